"""Report figures (matplotlib, Agg backend): each function takes a report section and a PNG path."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    """The figure as a PNG at path, written by the project's one atomic writer (`jsonl_io.atomic_write_bytes`)."""
    import io

    from ..jsonl_io import atomic_write_bytes

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    _plt().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _err(rows: Sequence[Mapping], key: str = "spearman") -> tuple[np.ndarray, np.ndarray]:
    m = np.array([r[f"{key}_mean"] for r in rows], dtype=float)
    lo = np.array([r[f"{key}_lo"] for r in rows], dtype=float)
    hi = np.array([r[f"{key}_hi"] for r in rows], dtype=float)
    return m, np.vstack([m - lo, hi - m])


def plot_agreement(agreement: Mapping[str, Mapping], path, title: str = "Rank agreement with greedy") -> Path:
    """Horizontal bars: per-chain Spearman mean with 95% bootstrap interval, one bar per scorer."""
    plt = _plt()
    names = sorted(agreement, key=lambda k: agreement[k]["spearman_mean"])
    m, err = _err([agreement[k] for k in names])
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.2))
    colors = ["tab:orange" if k == "learned" or k == "all" else "tab:blue" for k in names]
    ax.barh(names, m, xerr=err, color=colors, alpha=0.85, capsize=3)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("per-chain Spearman with greedy ranks (mean, 95% CI)")
    ax.set_title(title)
    return _save(fig, path)


def plot_ablation(ablation: Mapping[str, Mapping], path) -> Path:
    ok = {k: v for k, v in ablation.items() if v.get("n_features")}
    return plot_agreement(ok, path, title="Feature-group ablation (held-out chains)")


def plot_fidelity(fidelity: Mapping, path) -> Path:
    """Objective minus the greedy oracle's at the same budget vs keep ratio, per method (JOINT, ANSWER).

    Differences are paired per chain (mean, 95% CI), so the shared effect of length cancels out.
    """
    plt = _plt()
    ratios = np.array(fidelity["ratios"], dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    methods = list(fidelity["methods"])
    offsets = np.linspace(-0.012, 0.012, max(1, len(methods)))
    for ax, obj in zip(axes, ("joint", "answer")):
        for off, name in zip(offsets, methods):
            e = fidelity["methods"][name][obj]
            m = np.array(e["delta_vs_greedy"], dtype=float)
            lo, hi = np.array(e["delta_lo"], dtype=float), np.array(e["delta_hi"], dtype=float)
            err = np.abs(np.vstack([m - lo, hi - m]))
            style = dict(lw=2.5, color="k") if name == "greedy" else dict(ls="--", color="gray") \
                if name == "random" else {}
            ax.errorbar(ratios + off, m, yerr=err, marker="o", ms=4, capsize=2, label=name, **style)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("keep ratio")
        ax.set_ylabel(f"{obj.upper()} log-likelihood minus greedy's")
        ax.set_title(f"{obj.upper()} objective of pruned chains vs greedy")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="best")
    return _save(fig, path)


def plot_functions(functions: Mapping[str, Mapping], path, categories: Sequence[str] | None = None) -> Path:
    """Grouped bars: mean normalized rank per functional category, greedy vs predictor(s)."""
    plt = _plt()
    methods = list(functions)
    cats = list(categories or [c for c in functions["greedy"]])
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(cats))
    fig, ax = plt.subplots(figsize=(8, 4))
    for j, m in enumerate(methods):
        vals = [functions[m].get(c, {}).get("mean", np.nan) for c in cats]
        lo = [functions[m].get(c, {}).get("lo", np.nan) for c in cats]
        hi = [functions[m].get(c, {}).get("hi", np.nan) for c in cats]
        err = np.abs(np.vstack([np.subtract(vals, lo), np.subtract(hi, vals)]))
        ax.bar(x + (j - (len(methods) - 1) / 2) * width, vals, width, yerr=err, capsize=2, label=m)
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    ax.set_xticks(x, [c.replace("_", "\n") for c in cats])
    ax.set_ylabel("mean normalized rank (1 = kept longest)")
    ax.set_ylim(0, 1)
    ax.set_title("Functional categories: when are tokens pruned?")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_frontier(points: Sequence[Mapping], path) -> Path:
    """Spearman with greedy ranks vs forward passes per chain (log scale); one legend entry per method,
    the learned predictor's refresh settings and greedy's strides joined by lines."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    markers = {"refresh": "o", "scorer": "s", "greedy": "^"}
    colors = plt.get_cmap("tab20").colors
    for kind in ("refresh", "greedy"):
        series = sorted((p for p in points if p.get("kind") == kind), key=lambda p: p["passes_per_chain"])
        if len(series) > 1:
            ax.plot([p["passes_per_chain"] for p in series], [p["spearman_mean"] for p in series],
                    color="k", lw=0.8, alpha=0.5)
    for i, p in enumerate(points):
        m = p["spearman_mean"]
        label = p["method"] if "pass" in p["method"] else f"{p['method']} ({p['passes_per_chain']:.3g} passes)"
        ax.errorbar(p["passes_per_chain"], m, yerr=[[m - p["spearman_lo"]], [p["spearman_hi"] - m]],
                    fmt=markers.get(p.get("kind", ""), "D"), color=colors[i % len(colors)], capsize=3, ms=7,
                    label=label)
    ax.set_xscale("log")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("LM forward passes per chain (log)")
    ax.set_ylabel("per-chain Spearman with greedy (mean, 95% CI)")
    ax.set_title("Cost-quality frontier")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)
