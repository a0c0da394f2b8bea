"""Local-gain baseline: greedy's own objective, truncated to the deleted token and its successor.

Deleting reasoning token j changes the JOINT log-likelihood by minus its own log-prob term, plus the
change of the next token's log-prob (log p(x_{j+1} | x_{<j}) - log p(x_{j+1} | x_{<=j})), plus the
change of every later token's. The first two come from the same forward pass as surprisal (the row
that predicts x_j, read at x_{j+1}); the search adds the rest by re-running each suffix
(`greedy.candidates.local_gains` is the same quantity inside the search). A single free signal,
measured in docs/quality.md ("The local gain").
"""
from __future__ import annotations

import numpy as np

from ..observe import Observation
from .base import Scorer


class LocalGainScorer(Scorer):
    """score[i] = -(local gain of deleting token i), nats: the tokens whose deletion costs the JOINT
    objective least locally (or raises it) go first. Needs an observation with `skip_logprob` /
    `next_logprob` (any `observe` forward); raises ValueError without them."""

    name = "local-gain"

    def score(self, obs: Observation) -> np.ndarray:
        return -obs.local_gains()
