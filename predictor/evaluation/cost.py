"""Cost: seconds per chain of each scorer and of greedy labeling; the cost-quality frontier.

The frontier plots Spearman with the greedy ranks against LM forward passes per chain: the static
predictor (1 pass), `refresh` settings (k passes), exact one-step leave-one-out (n + 1 passes),
greedy with `stride` s (sum of candidates over its steps), and exact greedy (n(n+1)/2 passes, 1.0).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from ..metrics import bootstrap_ci, per_chain_spearman


def greedy_passes(n: int, stride: int = 1) -> int:
    """Forward passes (candidate evaluations) of greedy with `stride`: sum over steps of kept tokens."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return int(sum(range(n, 0, -stride)))


def frontier_point(method: str, passes: Sequence[float], pred: Sequence[np.ndarray], true: Sequence[np.ndarray],
                   seconds: Sequence[float] | None = None, kind: str = "", n_boot: int = 1000,
                   seed: int = 0) -> dict:
    """One frontier point: mean passes per chain, Spearman mean [lo, hi], mean seconds per chain."""
    m, lo, hi = bootstrap_ci(per_chain_spearman(pred, true), n_boot=n_boot, seed=seed)
    return {"method": method, "kind": kind, "n_chains": len(true), "passes_per_chain": float(np.mean(passes)),
            "spearman_mean": m, "spearman_lo": lo, "spearman_hi": hi,
            "seconds_per_chain": float(np.mean(seconds)) if seconds else None}


def timed(fn: Callable, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def refresh_points(rank_predictor, chains: Sequence, true: Sequence[np.ndarray], refreshes: Sequence[int],
                   name: str = "learned", progress=None) -> list[dict]:
    """Frontier points of `RankPredictor.predict_ranks(chain, refresh=k)` for each k."""
    pts = []
    for k in refreshes:
        preds, secs, passes = [], [], []
        it = progress(list(zip(chains, true)), desc=f"refresh={k}") if progress else zip(chains, true)
        for c, t in it:
            r, s = timed(rank_predictor.predict_ranks, c, refresh=int(k))
            preds.append(np.asarray(r))
            secs.append(s)
            passes.append(min(int(k), len(t)))
        label = f"{name} (1 pass)" if k == 1 else f"{name} refresh={k}"
        pts.append(frontier_point(label, passes, preds, true, secs, kind="refresh"))
    return pts


def stride_points(lm, records: Sequence[dict], strides: Sequence[int], progress=None) -> list[dict]:
    """Greedy with stride s > 1 (re-run) on `records`, scored against their exact greedy ranks; plus
    exact greedy itself (Spearman 1, passes n(n+1)/2, the records' own labeling seconds)."""
    from ..greedy import greedy_prune
    from ..ranked import record_chain

    true = [np.asarray(r["ranks"]) for r in records]
    pts = []
    for s in strides:
        if s == 1:
            continue
        preds, secs = [], []
        it = progress(records, desc=f"greedy stride={s}") if progress else records
        for rec in it:
            res = greedy_prune(lm, record_chain(rec), objective=rec.get("objective", "joint"), stride=int(s))
            if len(res.ranks) != len(rec["ranks"]):
                raise RuntimeError(f"chain {rec['id']}: re-encoding gave {len(res.ranks)} tokens, "
                                   f"the record has {len(rec['ranks'])} (another tokenizer/LM?)")
            preds.append(np.asarray(res.ranks))
            secs.append(res.seconds)
        pts.append(frontier_point(f"greedy stride={s}", [greedy_passes(len(t), s) for t in true], preds, true,
                                  secs, kind="greedy"))
    pts.append(frontier_point("greedy (exact)", [greedy_passes(len(t)) for t in true], true, true,
                              [float(r["seconds"]) for r in records], kind="greedy"))
    return pts


def cost_table(scorer_seconds: dict[str, float], scorer_passes: dict[str, float],
               greedy_seconds: Sequence[float], greedy_lengths: Sequence[int]) -> list[dict]:
    """Rows {method, seconds_per_chain, passes_per_chain, speedup_vs_greedy} sorted by seconds."""
    g = float(np.mean(greedy_seconds)) if len(greedy_seconds) else float("nan")
    rows = [{"method": k, "seconds_per_chain": v, "passes_per_chain": scorer_passes.get(k, 1.0),
             "speedup_vs_greedy": g / v if v > 0 else float("nan")} for k, v in scorer_seconds.items()]
    if len(greedy_seconds):
        rows.append({"method": "greedy (labeling)", "seconds_per_chain": g,
                     "passes_per_chain": float(np.mean([greedy_passes(n) for n in greedy_lengths])),
                     "speedup_vs_greedy": 1.0})
    return sorted(rows, key=lambda r: r["seconds_per_chain"])
