"""The exact greedy oracle (Singh & Hakkani-Tur 2026) as a scorer: score = greedy pruning rank.

Runs the fast exact search of `predictor.greedy` on the observed state (obs.layout, which may be a
reduced, partly pruned state), so `ranks()` equals `greedy_prune(lm, chain).ranks` on a full chain.
Cost: n(n+1)/2 candidate evaluations (batched, with prefix KV reuse) instead of one pass.
"""
from __future__ import annotations

import numpy as np

from ..greedy import greedy_layout
from ..lm import LM
from ..objective import check_objective
from ..observe import Observation
from .base import Scorer


def require_lm(obs: Observation, who: str) -> LM:
    """The LM an observation was made with (scorers that run more passes need it)."""
    if obs.lm is None:
        raise ValueError(f"the {who} scorer needs the LM: observe the chain with predictor.observe.observe(lm, ...)")
    return obs.lm


class GreedyScorer(Scorer):
    """score[i] = step at which the greedy search deletes token i (1 = first)."""

    name = "greedy"

    def __init__(self, objective: str = "joint", batch_tokens: int | None = None):
        self.objective = check_objective(objective)
        self.batch_tokens = batch_tokens

    def score(self, obs: Observation) -> np.ndarray:
        lm = require_lm(obs, "greedy")
        return np.asarray(greedy_layout(lm, obs.layout, self.objective, batch_tokens=self.batch_tokens).ranks,
                          dtype=np.float64)

    def extra_forward_passes(self, n: int) -> int:
        return n * (n + 1) // 2
