"""Random baseline: a seeded, deterministic random permutation per chain."""
from __future__ import annotations

import zlib

import numpy as np

from ..observe import Observation
from .base import Scorer


class RandomScorer(Scorer):
    """Uniform random scores from `numpy.random.default_rng([seed, crc32(reasoning ids)])`.

    The same seed and the same (kept) reasoning always give the same ranks; different chains get
    different permutations.
    """

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def score(self, obs: Observation) -> np.ndarray:
        ids = np.asarray(obs.layout.reasoning_ids, dtype=np.int64)
        rng = np.random.default_rng([self.seed, zlib.crc32(ids.tobytes())])
        return rng.random(obs.n)
