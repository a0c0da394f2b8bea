"""Exact one-step importance: the objective after deleting each single token from the observed state.

The first step of the greedy search (Singh & Hakkani-Tur 2026) without the later steps: tokens
whose deletion leaves the highest objective are pruned first, so score[i] = -objective(without i).
The n candidates are scored with the greedy labeler's batched prefix-KV-reuse evaluator, which
equals `predictor.objective.sequence_objective` on each single-deletion sequence up to round-off.
"""
from __future__ import annotations

import numpy as np
import torch

from ..greedy import make_scorer
from ..objective import check_objective
from ..observe import Observation
from .base import Scorer
from .greedy_oracle import require_lm


class LeaveOneOutScorer(Scorer):
    """score[i] = -(objective of the sequence with reasoning token i deleted)."""

    name = "leave-one-out"

    def __init__(self, objective: str = "joint", batch_tokens: int | None = None):
        self.objective = check_objective(objective)
        self.batch_tokens = batch_tokens

    @torch.no_grad()
    def score(self, obs: Observation) -> np.ndarray:
        lm = require_lm(obs, "leave-one-out")
        sc = make_scorer(lm, obs.layout, self.objective, self.batch_tokens, reuse=False, bound=False)
        return -sc.candidates(list(range(obs.n)))

    def extra_forward_passes(self, n: int) -> int:
        return n
