"""Surprisal baseline (Selective Context, Li et al. 2023): static -log p of each token in context."""
from __future__ import annotations

import numpy as np

from ..observe import Observation
from .base import Scorer


class SurprisalScorer(Scorer):
    """score[i] = -log p(r_i | Q, r_<i): the highest-probability (least surprising) tokens go first."""

    name = "surprisal"

    def score(self, obs: Observation) -> np.ndarray:
        return np.asarray(obs.surprisal, dtype=np.float64)
