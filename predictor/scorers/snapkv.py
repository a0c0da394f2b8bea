"""SnapKV baseline (Li et al. 2024): attention from the last window of queries, pooled over tokens."""
from __future__ import annotations

import numpy as np

from ..observe import Observation
from .base import Scorer


def pool1d(x: np.ndarray, kernel: int, mode: str = "avg") -> np.ndarray:
    """Same-length 1-D pooling of x [n] with an odd kernel; windows are clipped at the edges (torch's
    avg_pool1d / max_pool1d: bit-identical to a window-by-window numpy mean for kernels up to 7, the
    default 5 included; wider windows sum in another order, ~1e-16 relative)."""
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"pooling kernel must be a positive odd integer, got {kernel}")
    if mode not in ("avg", "max"):
        raise ValueError(f"pooling must be 'avg' or 'max', got {mode!r}")
    import torch
    import torch.nn.functional as F

    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return x.copy()
    t = torch.from_numpy(np.ascontiguousarray(x)).reshape(1, 1, -1)
    # padding kernel // 2 keeps the length; padded places count in neither the mean nor the max
    if mode == "avg":
        out = F.avg_pool1d(t, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    else:
        out = F.max_pool1d(t, kernel, stride=1, padding=kernel // 2)
    return out.reshape(-1).numpy().copy()


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
