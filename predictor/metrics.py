"""Rank-agreement metrics on plain arrays (per-chain rank vectors; 1 = pruned first).

Every function takes predicted and true ranks per chain (any monotone score works for the
correlations; `precision_first_pruned` needs ranks or scores where lower = pruned earlier).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

ArrayList = Sequence[np.ndarray]


def _as_float(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).ravel()


def _check_pair(pred: ArrayList, true: ArrayList) -> None:
    if len(pred) != len(true):
        raise ValueError(f"got {len(pred)} predicted and {len(true)} true rank vectors")
    for i, (p, t) in enumerate(zip(pred, true)):
        if len(p) != len(t):
            raise ValueError(f"chain {i}: {len(p)} predicted vs {len(t)} true ranks")


def _corr(fn, p: np.ndarray, t: np.ndarray) -> float:
    """A correlation that is 0.0 (not NaN) for fewer than two tokens or constant input."""
    if len(p) < 2 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return 0.0
    r = fn(p, t)[0]
    return 0.0 if not np.isfinite(r) else float(r)


def spearman(pred, true) -> float:
    return _corr(stats.spearmanr, _as_float(pred), _as_float(true))


def kendall(pred, true) -> float:
    return _corr(stats.kendalltau, _as_float(pred), _as_float(true))


def per_chain_spearman(pred_ranks: ArrayList, true_ranks: ArrayList) -> np.ndarray:
    """Spearman correlation of each chain's predicted and true ranks, float [chains]."""
    _check_pair(pred_ranks, true_ranks)
    return np.array([spearman(p, t) for p, t in zip(pred_ranks, true_ranks)], dtype=np.float64)


def per_chain_kendall(pred_ranks: ArrayList, true_ranks: ArrayList) -> np.ndarray:
    _check_pair(pred_ranks, true_ranks)
    return np.array([kendall(p, t) for p, t in zip(pred_ranks, true_ranks)], dtype=np.float64)


def mean_kendall(pred_ranks: ArrayList, true_ranks: ArrayList) -> float:
    """Mean over chains of Kendall's tau-b."""
    v = per_chain_kendall(pred_ranks, true_ranks)
    return float(v.mean()) if len(v) else float("nan")


def normalize(r) -> np.ndarray:
    """Ranks/scores -> normalized ranks in [0, 1] (average ranks for ties; 0.5 for one token)."""
    r = _as_float(r)
    if len(r) <= 1:
        return np.full(len(r), 0.5)
    return (stats.rankdata(r) - 1) / (len(r) - 1)


def pooled_spearman(pred_ranks: ArrayList, true_ranks: ArrayList) -> float:
    """Spearman over all tokens of all chains pooled, each chain's ranks normalized to [0, 1] first."""
    _check_pair(pred_ranks, true_ranks)
    if not pred_ranks:
        return float("nan")
    p = np.concatenate([normalize(x) for x in pred_ranks])
    t = np.concatenate([normalize(x) for x in true_ranks])
    return spearman(p, t)


def first_pruned(ranks, frac: float) -> set[int]:
    """Indices of the first-pruned ceil(frac * n) tokens (lowest ranks; ties: lower index first)."""
    r = _as_float(ranks)
    k = min(len(r), max(1, math.ceil(frac * len(r) - 1e-9))) if len(r) else 0
    return set(np.argsort(r, kind="stable")[:k].tolist())


def precision_first_pruned(pred, true, frac: float) -> float:
    """Fraction of the predicted first-pruned `frac` of tokens that greedy also prunes in its first `frac`."""
    if not 0 < frac <= 1:
        raise ValueError(f"frac must be in (0, 1], got {frac}")
    p, t = first_pruned(pred, frac), first_pruned(true, frac)
    return len(p & t) / len(p) if p else float("nan")


def bootstrap_ci(values, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05,
                 weights=None) -> tuple[float, float, float]:
    """(mean, lo, hi): percentile bootstrap interval of the mean over chains (NaNs dropped).

    weights: per-chain weights w (e.g. token counts); the statistic is then the weighted mean
    sum(w * v) / sum(w), resampled by chain.
    """
    v = _as_float(values)
    w = None if weights is None else _as_float(weights)
    if w is not None and len(w) != len(v):
        raise ValueError(f"{len(v)} values but {len(w)} weights")
    keep = np.isfinite(v) if w is None else np.isfinite(v) & np.isfinite(w)
    v = v[keep]
    w = None if w is None else w[keep]

    if len(v) == 0 or (w is not None and w.sum() <= 0):
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean() if w is None else (w * v).sum() / w.sum())
    if len(v) == 1:
        return mean, mean, mean
    from scipy.stats import bootstrap

    # The same draws as resampling by hand (one [n_boot, n] matrix of chain indices from the seeded
    # generator) and the same percentile interval (linear interpolation); scipy's quantile rounds
    # the interpolation differently, so bounds move by ~1e-15 (tests/test_metrics.py checks 1e-12).
    if w is None:
        data, paired = (v,), False

        def stat(x, axis=-1):
            return x.mean(axis=axis)
    else:
        data, paired = (v, w), True

        def stat(x, ww, axis=-1):
            return (ww * x).sum(axis=axis) / ww.sum(axis=axis)
    res = bootstrap(data, stat, n_resamples=n_boot, confidence_level=1 - alpha, method="percentile",
                    paired=paired, vectorized=True, rng=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    return mean, float(min(lo, mean)), float(max(hi, mean))


def summarize(pred_list: ArrayList, true_list: ArrayList, n_boot: int = 2000, seed: int = 0) -> dict:
    """All agreement numbers of one scorer: Spearman mean + 95% CI, pooled, Kendall, precision@25/50%."""
    rho = per_chain_spearman(pred_list, true_list)
    mean, lo, hi = bootstrap_ci(rho, n_boot=n_boot, seed=seed)
    out = {
        "n_chains": len(rho),
        "n_tokens": int(sum(len(t) for t in true_list)),
        "spearman_mean": mean, "spearman_lo": lo, "spearman_hi": hi,
        "pooled_spearman": pooled_spearman(pred_list, true_list),
        "kendall_mean": mean_kendall(pred_list, true_list),
    }
    for frac in (0.25, 0.5):
        prec = [precision_first_pruned(p, t, frac) for p, t in zip(pred_list, true_list)]
        out[f"precision_first_{int(frac * 100)}"] = float(np.nanmean(prec)) if prec else float("nan")
    out["per_chain_spearman"] = rho.tolist()
    return out
