"""The rank conventions of shared/DESIGN.md, on plain arrays.

ranks[i] in 1..n is the step at which reasoning token i is deleted (1 = pruned first); a score is an
importance (higher = pruned later; among equal scores the lower index goes first); the normalized
rank (ranks - 1) / (n - 1) is in [0, 1] (1 = kept longest); a deletion order lists the indices in the
order they go.
"""
from __future__ import annotations

import numpy as np


def scores_to_ranks(scores: np.ndarray) -> np.ndarray:
    """Importance [n] -> ranks [n] (1 = pruned first = lowest score; ties: lower index first)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise ValueError("scores must be a finite 1-D array")
    from scipy.stats import rankdata  # ordinal: a stable sort, so among ties the lower index goes first

    return rankdata(scores, method="ordinal").astype(np.int64, copy=False)


def normalized_ranks(ranks: np.ndarray) -> np.ndarray:
    """(ranks - 1) / (n - 1) in [0, 1] (1 = kept longest); 0.5 for a single token."""
    ranks = np.asarray(ranks, dtype=np.float64)
    n = len(ranks)
    return (ranks - 1) / (n - 1) if n > 1 else np.full(n, 0.5)


def ranks_from_order(order: list[int], n: int | None = None) -> list[int]:
    """ranks[i] = 1-based step at which token i was deleted (0 if a partial search never deleted it)."""
    ranks = [0] * (len(order) if n is None else n)
    for step, i in enumerate(order, 1):
        ranks[i] = step
    return ranks
