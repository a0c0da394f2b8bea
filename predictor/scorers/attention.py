"""H2O baseline (Zhang et al. 2023, "Heavy-Hitter Oracle"): accumulated attention received."""
from __future__ import annotations

import numpy as np

from ..observe import Observation
from .base import Scorer


class AttentionScorer(Scorer):
    """score[i] = sum over layers, heads and every later scored query of the attention to token i.

    Uses obs.attn["received_sum"] [layers, heads, n]. H2O keeps the tokens with the largest
    accumulated score. `normalize=True` divides by the number of queries that can attend to token i
    (itself, the later reasoning tokens and the answer), removing the causal bias toward early tokens.
    """

    name = "attention"
    needs_attention = True
    observe_kwargs = {"probe": None}  # reads no probe statistics: no probe to fit in the context

    def __init__(self, normalize: bool = False):
        self.normalize = bool(normalize)

    def score(self, obs: Observation) -> np.ndarray:
        s = obs.attn["received_sum"].astype(np.float64).sum(axis=(0, 1))  # [n]
        if self.normalize:
            n, a = obs.n, len(obs.layout.answer_ids)
            s = s / (n - np.arange(n) + a)
        return s
