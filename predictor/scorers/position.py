"""Position baseline: earlier tokens are pruned first (score = index)."""
from __future__ import annotations

import numpy as np

from ..observe import Observation
from .base import Scorer


class PositionScorer(Scorer):
    """score[i] = i: the first reasoning token goes first, the last one is kept longest.

    `reverse=True` flips the convention (later tokens pruned first).
    """

    name = "position"

    def __init__(self, reverse: bool = False):
        self.reverse = bool(reverse)

    def score(self, obs: Observation) -> np.ndarray:
        idx = np.arange(obs.n, dtype=np.float64)
        return -idx if self.reverse else idx
