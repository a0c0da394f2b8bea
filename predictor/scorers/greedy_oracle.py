"""The exact greedy oracle (Singh & Hakkani-Tur 2026) as a scorer: score = greedy pruning rank.

Runs the fast exact search of `predictor.greedy` on the observed state (obs.layout, which may be a
reduced, partly pruned state), so `ranks()` equals `greedy_prune(lm, chain).ranks` on a full chain.
Cost: n(n+1)/2 candidate evaluations (batched, with prefix KV reuse) instead of one pass.
"""
from __future__ import annotations

import numpy as np
import torch

from ..greedy import _Scorer
from ..objective import check_objective
from ..observe import Observation
from .base import Scorer


def require_lm(obs: Observation, who: str):
    if obs.lm is None:
        raise ValueError(f"the {who} scorer needs the LM: observe the chain with predictor.observe.observe(lm, ...)")
    return obs.lm


class GreedyScorer(Scorer):
    """score[i] = step at which the greedy search deletes token i (1 = first)."""

    name = "greedy"

    def __init__(self, objective: str = "joint", batch_tokens: int | None = None):
        self.objective = check_objective(objective)
        self.batch_tokens = batch_tokens

    @torch.no_grad()
    def score(self, obs: Observation) -> np.ndarray:
        lm = require_lm(obs, "greedy")
        sc = _Scorer(lm, obs.layout, self.objective, self.batch_tokens)
        kept = list(range(obs.n))
        ranks = np.zeros(obs.n)
        step = 0
        while kept:
            cand = sc.candidates(kept)
            best = int(np.argsort(-cand, kind="stable")[0])  # highest objective; ties: lowest index
            step += 1
            ranks[kept.pop(best)] = step
        return ranks

    def extra_forward_passes(self, n: int) -> int:
        return n * (n + 1) // 2
