"""SnapKV baseline (Li et al. 2024): attention from the last window of queries, pooled over tokens."""
from __future__ import annotations

import numpy as np

from ..observe import Observation
from .base import Scorer


def pool1d(x: np.ndarray, kernel: int, mode: str = "avg") -> np.ndarray:
    """Same-length 1-D pooling of x [n] with an odd kernel; windows are clipped at the edges."""
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"pooling kernel must be a positive odd integer, got {kernel}")
    if mode not in ("avg", "max"):
        raise ValueError(f"pooling must be 'avg' or 'max', got {mode!r}")
    n, h = len(x), kernel // 2
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        w = x[max(0, i - h): i + h + 1]
        out[i] = w.mean() if mode == "avg" else w.max()
    return out


class SnapKVScorer(Scorer):
    """score = pool(sum over layers of the head-mean of obs.attn["window_mean"]) [n].

    window_mean is the mean attention from the last WINDOW scored queries (the end of the answer).
    SnapKV pools the votes so that neighbours of a selected token survive with it (kernel 5).
    """

    name = "snapkv"
    needs_attention = True
    observe_kwargs = {"probe": None}  # reads no probe statistics: no probe to fit in the context

    def __init__(self, kernel: int = 5, pooling: str = "avg"):
        pool1d(np.zeros(1), kernel, pooling)  # validate early
        self.kernel, self.pooling = kernel, pooling

    def score(self, obs: Observation) -> np.ndarray:
        votes = obs.attn["window_mean"].astype(np.float64).mean(axis=1).sum(axis=0)  # [n]
        return pool1d(votes, self.kernel, self.pooling)
