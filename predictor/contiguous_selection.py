"""Contiguity-aware selection: which tokens to keep when every removed gap has a cost.

Plain selection keeps the k tokens ranked highest, wherever they are; the kept text is then
scattered. The greedy search's JOINT objective, log P(R_kept, A | Q), also scores the kept
reasoning's own likelihood, and scattered tokens are disfluent text: measured on the shipped
predictor's test chains, keeping a contiguous suffix (the `position` baseline) recovers more of
the random-to-greedy JOINT gap at keep 0.5 and 0.3 than greedy's own survivors (docs/quality.md §8).

This module keeps exactly k tokens (whole units) maximizing

    sum of kept tokens' values  -  gap_cost * (number of maximal runs of removed tokens)

by dynamic programming over units (a segmentation DP in the style of Viterbi; O(U * n) time and
O(U * n) bytes of back-pointers for U units of n tokens). A token's value is its normalized
predicted rank, rank / n in (0, 1], so gap_cost is in units of "one token's full rank range":
gap_cost = 0 keeps the top-k ranks (plain selection), a large gap_cost removes one contiguous run
(the lowest-valued one). Protected units are always kept; when exactly k tokens cannot be kept with
whole units, the smallest feasible count above k is kept (the same budget rule as `select_kept`).
"""
from __future__ import annotations

import numpy as np


def rank_values(ranks: np.ndarray, position_weight: float = 0.0) -> np.ndarray:
    """Per-token values for the DP: (1 - w) * rank / n + w * (i + 1) / n, float [n].

    ranks: int [n], 1 = pruned first. position_weight w in [0, 1] blends in the token's relative
    position (w = 1: later tokens are worth more, the `position` baseline's preference)."""
    r = np.asarray(ranks, dtype=np.float64)
    n = len(r)
    if not 0.0 <= position_weight <= 1.0:
        raise ValueError(f"position_weight must be in [0, 1], got {position_weight!r}")
    return (1.0 - position_weight) * r / n + position_weight * np.arange(1, n + 1) / n


def select_kept_contiguous(values: np.ndarray, k: int, gap_cost: float, protected: np.ndarray | None = None,
                           groups: list[list[int]] | None = None) -> list[int]:
    """Sorted kept token indices: the whole-unit set of (at least) k tokens with the best
    sum(values[kept]) - gap_cost * (removed runs).

    values: float [n] (higher = more worth keeping); k: tokens to keep, 1 <= k <= n; gap_cost >= 0;
    protected: bool [n] (a unit holding a protected token is always kept); groups: token indices of
    each unit, consecutive and covering 0..n-1 in order (default: one unit per token).
    Keeps exactly k tokens when whole units allow it, otherwise the smallest feasible count above k
    (all tokens at worst). Raises ValueError for a bad k, a negative gap_cost or groups that do not
    tile 0..n-1 in order.
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if not gap_cost >= 0:
        raise ValueError(f"gap_cost must be >= 0, got {gap_cost!r}")
    groups = [[i] for i in range(n)] if groups is None else [list(g) for g in groups]
    if [i for g in groups for i in g] != list(range(n)):
        raise ValueError("groups must be consecutive runs covering token indices 0..n-1 in order")
    prot = np.zeros(n, dtype=bool) if protected is None else np.asarray(protected, dtype=bool)
    n_units = len(groups)
    neg = -np.inf
    # keep[c] / gone[c]: best value with c tokens kept so far, the last unit kept / removed.
    # Start as if a kept unit preceded the chain, so removing the first unit opens a run.
    keep = np.full(n + 1, neg)
    keep[0] = 0.0
    gone = np.full(n + 1, neg)
    from_gone_k = np.zeros((n_units, n + 1), dtype=bool)  # keep unit u at count c came from "gone"
    from_gone_g = np.zeros((n_units, n + 1), dtype=bool)  # remove unit u at count c came from "gone"
    for u, g in enumerate(groups):
        s, val = len(g), float(v[g].sum())
        new_keep = np.full(n + 1, neg)
        src_gone = gone[: n + 1 - s] > keep[: n + 1 - s]
        new_keep[s:] = np.where(src_gone, gone[: n + 1 - s], keep[: n + 1 - s]) + val
        from_gone_k[u, s:] = src_gone
        if prot[g].any():
            new_gone = np.full(n + 1, neg)
        else:
            open_run = keep - gap_cost
            src_g = gone >= open_run
            new_gone = np.where(src_g, gone, open_run)
            from_gone_g[u] = src_g
        keep, gone = new_keep, new_gone
    final = np.maximum(keep, gone)
    feasible = np.flatnonzero(np.isfinite(final[k:]))
    c = k + int(feasible[0])  # keeping every unit is always feasible, so this exists
    state_gone = bool(gone[c] > keep[c])
    kept: list[int] = []
    for u in range(n_units - 1, -1, -1):
        g = groups[u]
        if state_gone:
            state_gone = bool(from_gone_g[u, c])
        else:
            kept.extend(g)
            prev_gone = bool(from_gone_k[u, c])
            c -= len(g)
            state_gone = prev_gone
    return sorted(kept)


def removed_runs(kept: list[int], n: int) -> int:
    """Number of maximal runs of removed token indices in 0..n-1 given the kept ones."""
    mask = np.zeros(n, dtype=bool)
    mask[list(kept)] = True
    removed = ~mask
    return int(removed[0]) + int(np.sum(removed[1:] & ~removed[:-1])) if n else 0
