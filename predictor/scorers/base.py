"""The one scorer interface shared by baselines, the greedy oracle and learned predictors.

A scorer maps an `Observation` (one forward pass over a chain) to an importance score per
reasoning token: higher = pruned later (kept longer). Ranks follow DESIGN.md: ranks[i] in 1..n is
the step at which token i is deleted; among equal scores the lower index is deleted first.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from ..observe import Observation
from ..ranks import scores_to_ranks


class Scorer(ABC):
    """Subclasses set `name` and implement `score`; register them in `scorers/__init__.py`."""

    name: ClassVar[str]
    needs_attention: ClassVar[bool] = False  # whether the observation must carry attention statistics

    @abstractmethod
    def score(self, obs: Observation) -> np.ndarray:
        """Importance of each reasoning token, float [n]; higher = pruned later."""

    def score_many(self, observations: list[Observation]) -> list[np.ndarray]:
        """`score` of each observation (a scorer with a batched model overrides this)."""
        return [self.score(o) for o in observations]

    def ranks(self, obs: Observation) -> np.ndarray:
        """Predicted pruning ranks, int [n], a permutation of 1..n."""
        return scores_to_ranks(self.score(obs))

    def extra_forward_passes(self, n: int) -> int:
        """LM forward passes beyond the shared observation pass, for a chain of n tokens (cost reports)."""
        return 0
