"""Exact one-step importance: the objective after deleting each single token from the observed state.

The first step of the greedy search (Singh & Hakkani-Tur 2026) without the later steps: tokens
whose deletion leaves the highest objective are pruned first, so score[i] = -gain[i]
(`greedy.leave_one_out.leave_one_out_gains`, the labeler's batched prefix-KV-reuse evaluator).
"""
from __future__ import annotations

import numpy as np

from ..greedy.leave_one_out import leave_one_out_gains
from ..objective import check_objective
from ..observe import Observation
from .base import Scorer
from .greedy_oracle import require_lm


class LeaveOneOutScorer(Scorer):
    """score[i] = -(objective change of deleting reasoning token i alone)."""

    name = "leave-one-out"

    def __init__(self, objective: str = "joint", batch_tokens: int | None = None):
        self.objective = check_objective(objective)
        self.batch_tokens = batch_tokens

    def score(self, obs: Observation) -> np.ndarray:
        lm = require_lm(obs, "leave-one-out")
        return -leave_one_out_gains(lm, obs.layout, self.objective, self.batch_tokens)[0]

    def extra_forward_passes(self, n: int) -> int:
        return n
