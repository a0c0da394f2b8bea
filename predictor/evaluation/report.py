"""The evaluation report: render a results dict (JSON-able) as report.md + report.json + plots/*.png.

`write_report(out_dir, results)` only formats numbers computed elsewhere (by
`predictor.evaluation.evaluate`), so it is testable on plain data.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..jsonl_io import atomic_write_text

PLOTS = {"agreement": "agreement.png", "ablation": "ablation.png", "fidelity": "fidelity.png",
         "functions": "functions.png", "frontier": "frontier.png"}


def jsonable(x: Any) -> Any:
    """Nested copy with NaN/inf -> None and numpy scalars/arrays -> Python (strict JSON)."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return jsonable(x.tolist())
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    return x


def f3(x: Any, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def ci(m: Any, lo: Any, hi: Any) -> str:
    return f"{f3(m)} [{f3(lo)}, {f3(hi)}]" if m is not None and lo is not None else f3(m)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _secs(x: Any) -> str:
    if x is None:
        return "n/a"
    return f"{x:.3g}"


# --- sections ------------------------------------------------------------------------------------

def _header(meta: Mapping) -> str:
    lines = ["# Does attention predict the greedy pruning order?", ""]
    lines.append(f"Evaluation of token-ranking scorers against the greedy pruning oracle "
                 f"(Singh & Hakkani-Tür 2026) on **{meta.get('n_chains', '?')} held-out chains** "
                 f"({meta.get('n_tokens', '?')} reasoning tokens) of `{meta.get('data', '?')}`, "
                 f"objective {str(meta.get('objective', 'joint')).upper()}.")
    lines.append("")
    rows = [(k, f"`{meta[k]}`") for k in ("predictor", "regressor", "lm_name", "lm_fingerprint", "split",
                                          "device", "created", "package_version", "command") if meta.get(k)]
    lines.append(table(["", ""], rows))
    lines.append("")
    lines.append("Intervals are 95% percentile bootstraps over chains. Ranks: 1 = pruned first; a scorer "
                 "agrees with greedy when it prunes the same tokens first.")
    return "\n".join(lines)


def _summary(res: Mapping) -> str:
    agr = res.get("agreement") or {}
    if not agr:
        return ""
    pred = res.get("meta", {}).get("predictor_name", "learned")
    lines = ["## Summary", ""]
    if pred in agr:
        a = agr[pred]
        lines.append(f"- The learned predictor ({pred}) ranks tokens with per-chain Spearman "
                     f"**{ci(a['spearman_mean'], a['spearman_lo'], a['spearman_hi'])}** against greedy.")
    base = {k: v for k, v in agr.items() if k != pred}
    if base:
        best = max(base, key=lambda k: base[k]["spearman_mean"])
        b = base[best]
        lines.append(f"- Best other scorer: `{best}` at {ci(b['spearman_mean'], b['spearman_lo'], b['spearman_hi'])}.")
    for k in ("attention", "random"):
        if k in agr and k != pred:
            a = agr[k]
            lines.append(f"- `{k}`: {ci(a['spearman_mean'], a['spearman_lo'], a['spearman_hi'])}.")
    fid = res.get("fidelity")
    if fid and pred in fid.get("methods", {}):
        e = fid["methods"][pred]["joint"]
        lines.append(f"- Pruned by the predictor, chains recover **{f3(e.get('gap_recovered_mean'))}** of the "
                     f"random-to-greedy JOINT objective gap (per-chain mean; pooled "
                     f"{f3(e.get('gap_recovered_pooled_mean'))}; mean over keep ratios "
                     f"{', '.join(str(r) for r in fid['ratios'])}).")
        d = fid["methods"].get(f"{pred} (prune default)", {}).get("joint")
        if d:
            lines.append(f"- With `prune`'s default contiguity-aware selection (fewer, longer removed runs), "
                         f"**{f3(d.get('gap_recovered_mean'))}** (pooled {f3(d.get('gap_recovered_pooled_mean'))}).")
    abl = res.get("ablation") or {}
    cells = [f"{k} {ci(abl[k]['spearman_mean'], abl[k]['spearman_lo'], abl[k]['spearman_hi'])}"
             for k in ("attention only", "all but attention", "all") if abl.get(k, {}).get("n_features")]
    if cells:
        lines.append(f"- Ablation (retrained, same split): {'; '.join(cells)} (details below).")
    return "\n".join(lines)


def _agreement(res: Mapping, plots: Mapping[str, str]) -> str:
    agr = res.get("agreement") or {}
    if not agr:
        return ""
    secs = (res.get("cost") or {}).get("scorer_seconds", {})
    rows = []
    for name in sorted(agr, key=lambda k: -agr[k]["spearman_mean"]):
        a = agr[name]
        rows.append([f"`{name}`", ci(a["spearman_mean"], a["spearman_lo"], a["spearman_hi"]),
                     f3(a["pooled_spearman"]), f3(a["kendall_mean"]), f3(a["precision_first_25"]),
                     f3(a["precision_first_50"]), _secs(secs.get(name))])
    out = ["## Rank agreement with the greedy oracle", "",
           table(["scorer", "Spearman per chain, mean [95% CI]", "pooled Spearman", "Kendall tau",
                  "precision first 25%", "precision first 50%", "s / chain"], rows), ""]
    if "agreement" in plots:
        out += [f"![rank agreement]({plots['agreement']})", ""]
    by_len = res.get("agreement_by_length") or []
    if by_len:
        names = sorted(agr, key=lambda k: -agr[k]["spearman_mean"])
        rows = [[r["bin"], r["n_chains"]] + [ci(r["scorers"][n]["spearman_mean"], r["scorers"][n]["spearman_lo"],
                                                r["scorers"][n]["spearman_hi"]) for n in names] for r in by_len]
        out += ["### By chain length (reasoning tokens)", "",
                table(["length", "chains"] + [f"`{n}`" for n in names], rows), ""]
    out.append("Precision first p%: of the tokens a scorer prunes in its first p%, the fraction greedy also "
               "prunes in its first p%. Pooled Spearman pools all tokens' normalized ranks.")
    return "\n".join(out)


def _ablation(res: Mapping, plots: Mapping[str, str]) -> str:
    abl = res.get("ablation")
    if not abl:
        return "## Feature-group ablation\n\n" + (res.get("ablation_note") or "Not run (`--no-ablation`).")
    rows = []
    for name, a in abl.items():
        if not a.get("n_features"):
            rows.append([name, ", ".join(a["groups"]), 0, "skipped", "", "", ""])
            continue
        rows.append([name, ", ".join(a["groups"]), a["n_features"],
                     ci(a["spearman_mean"], a["spearman_lo"], a["spearman_hi"]), f3(a["pooled_spearman"]),
                     f3(a["kendall_mean"]), f3(a["precision_first_25"])])
    n_train = next((a["n_train_chains"] for a in abl.values() if a.get("n_train_chains")), "?")
    out = ["## Feature-group ablation", "",
           f"The same regressor (`{res.get('ablation_regressor', 'lightgbm')}`) retrained on each feature "
           f"family, on the same training chains ({n_train}), scored on the same held-out chains.", "",
           table(["family", "groups", "features", "Spearman per chain [95% CI]", "pooled", "Kendall",
                  "precision first 25%"], rows), "", "**Findings.** " + res.get("ablation_findings", ""), ""]
    if "ablation" in plots:
        out.append(f"![ablation]({plots['ablation']})")
    return "\n".join(out)


def _fidelity(res: Mapping, plots: Mapping[str, str]) -> str:
    fid = res.get("fidelity")
    if not fid:
        return "## Downstream fidelity\n\nNot run (`--no-fidelity`)."
    ratios = fid["ratios"]
    out = ["## Downstream fidelity", "",
           f"Each scorer keeps its top round(r·n) tokens (as `prune` does) on {fid['n_chains']} chains; the "
           "objective of prompt + kept reasoning + answer is compared with the greedy oracle's survivors at "
           f"the same budget. Gap recovered = (scorer − {fid['baseline']}) / (greedy − {fid['baseline']}), "
           "per chain, then averaged over chains and over keep ratios (1 = as good as greedy, 0 = no better "
           "than random); chains with a small random-to-greedy gap make this noisy, so the pooled column "
           "computes the same fraction on the chain-mean objectives.", ""]
    for obj in ("joint", "answer"):
        rows = []
        methods = fid["methods"]
        def key(k):
            g = methods[k][obj].get("gap_recovered_pooled_mean")
            return -(g if g is not None else -1e30)

        for m in sorted(methods, key=key):
            e = methods[m][obj]
            gr = e.get("gap_recovered")
            rows.append([f"`{m}`"] + [f3(v) for v in e["mean"]] +
                        ([" / ".join(f3(g) for g in gr), f3(e.get("gap_recovered_mean")),
                          f3(e.get("gap_recovered_pooled_mean"))] if gr else ["", "", ""]))
        out += [f"### {obj.upper()} log-likelihood (mean over chains)", "",
                table(["method"] + [f"r={r}" for r in ratios] +
                      ["gap recovered per r", "mean gap recovered", "pooled gap recovered"], rows), ""]
    out.append("Greedy here is the JOINT-objective search, so on ANSWER it is a reference, not an upper bound. "
               "The plot shows each method's objective minus greedy's on the same chain (mean, 95% CI).")
    if "fidelity" in plots:
        out += ["", f"![objective vs keep ratio]({plots['fidelity']})"]
    return "\n".join(out)


def _functions(res: Mapping, plots: Mapping[str, str]) -> str:
    fn = res.get("functions")
    if not fn:
        return ""
    methods = list(fn)
    cats = list(fn.get("greedy", {}))
    rows = [[c, fn["greedy"][c]["n_tokens"]] + [ci(fn[m].get(c, {}).get("mean"), fn[m].get(c, {}).get("lo"),
                                                  fn[m].get(c, {}).get("hi")) for m in methods] for c in cats]
    out = ["## Function analysis", "",
           "Mean normalized rank (0 = pruned first, 1 = kept longest) of the tokens of each functional "
           "category (rule-based, `predictor.lexical`), under the greedy oracle and the predictor.", "",
           table(["category", "tokens"] + [f"`{m}`" for m in methods], rows), ""]
    if "functions" in plots:
        out.append(f"![function categories]({plots['functions']})")
    return "\n".join(out)


def _cost(res: Mapping, plots: Mapping[str, str]) -> str:
    cost = res.get("cost") or {}
    out = ["## Cost", ""]
    if cost.get("table"):
        rows = [[f"`{r['method']}`", _secs(r["seconds_per_chain"]), f"{r['passes_per_chain']:.3g}",
                 f"{r['speedup_vs_greedy']:.3g}x" if r.get("speedup_vs_greedy") else "n/a"] for r in cost["table"]]
        out += [f"Wall seconds per chain on {cost.get('machine', 'this machine')}, including the observation "
                "forward pass; greedy is the labeling run's recorded time per chain (possibly another machine "
                "or load). Forward passes: the shared observation pass plus each scorer's own; greedy counts "
                "one pass per candidate, n(n+1)/2.", "",
                table(["method", "s / chain", "forward passes / chain", "speed-up vs greedy"], rows), ""]
    fr = cost.get("frontier") or []
    if fr:
        rows = [[p["method"], p["n_chains"], f"{p['passes_per_chain']:.3g}",
                 ci(p["spearman_mean"], p["spearman_lo"], p["spearman_hi"]), _secs(p.get("seconds_per_chain"))]
                for p in sorted(fr, key=lambda p: p["passes_per_chain"])]
        out += ["### Cost-quality frontier", "",
                f"On the first {cost.get('frontier_chains', '?')} test chains: single-pass scorers, the learned "
                "predictor with `refresh` re-observations, exact one-step leave-one-out, greedy with `stride` "
                "(approximate) and exact greedy (Spearman 1 by definition).", "",
                table(["method", "chains", "passes / chain", "Spearman with greedy [95% CI]", "s / chain"], rows), ""]
    if "frontier" in plots:
        out.append(f"![cost-quality frontier]({plots['frontier']})")
    return "\n".join(out)


def _joint_answer(res: Mapping) -> str:
    ja = res.get("joint_vs_answer") or {}
    out = ["## JOINT vs ANSWER objective", ""]
    if not ja.get("n_chains"):
        out.append(ja.get("note") or "No chains labeled with both objectives yet.")
        return "\n".join(out)
    out.append(f"On {ja['n_chains']} chain(s) labeled with both objectives, the per-chain Spearman between the "
               f"JOINT and ANSWER greedy ranks is **{ci(ja['spearman_mean'], ja['spearman_lo'], ja['spearman_hi'])}** "
               f"(Kendall {f3(ja.get('kendall_mean'))}).")
    if ja.get("predictor_vs_answer"):
        p = ja["predictor_vs_answer"]
        out.append(f"The JOINT-trained predictor agrees with the ANSWER ranks at "
                   f"{ci(p['spearman_mean'], p['spearman_lo'], p['spearman_hi'])}.")
    return "\n".join(out)


def render_markdown(res: Mapping, plots: Mapping[str, str] | None = None) -> str:
    plots = plots or {}
    parts = [_header(res.get("meta", {})), _summary(res), _agreement(res, plots), _ablation(res, plots),
             _fidelity(res, plots), _functions(res, plots), _cost(res, plots), _joint_answer(res)]
    regen = res.get("meta", {}).get("regenerate")
    if regen:
        parts.append(f"## Reproduce\n\n```\n{regen}\n```")
    return "\n\n".join(p for p in parts if p).rstrip() + "\n"


def make_plots(res: Mapping, plot_dir: str | Path) -> dict[str, str]:
    """Write every figure the results support; returns section -> path relative to the report."""
    from . import plots as P

    plot_dir = Path(plot_dir)
    out: dict[str, str] = {}

    def do(key, fn, data):
        fn(data, plot_dir / PLOTS[key])
        out[key] = f"{plot_dir.name}/{PLOTS[key]}"

    if res.get("agreement"):
        do("agreement", P.plot_agreement, res["agreement"])
    if res.get("ablation") and any(a.get("n_features") for a in res["ablation"].values()):
        do("ablation", P.plot_ablation, res["ablation"])
    if res.get("fidelity"):
        do("fidelity", P.plot_fidelity, res["fidelity"])
    if res.get("functions"):
        do("functions", P.plot_functions, res["functions"])
    if (res.get("cost") or {}).get("frontier"):
        do("frontier", P.plot_frontier, res["cost"]["frontier"])
    return out


def write_report(out_dir: str | Path, results: Mapping, plots: bool = True) -> dict[str, Path]:
    """Write out_dir/report.json, out_dir/report.md and out_dir/plots/*.png (each file atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_paths = make_plots(results, out_dir / "plots") if plots else {}
    res = jsonable(results)
    res["plots"] = plot_paths
    atomic_write_text(out_dir / "report.json", json.dumps(res, indent=1, allow_nan=False) + "\n")
    atomic_write_text(out_dir / "report.md", render_markdown(res, plot_paths))
    return {"md": out_dir / "report.md", "json": out_dir / "report.json",
            **{k: out_dir / v for k, v in plot_paths.items()}}
