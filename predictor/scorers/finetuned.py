"""A fine-tuned LM scorer (predictor/lm_ranker.py) as a scorer: the predictor directory holds LoRA
adapters and a head for one base LM; `score` runs the adapted LM on the observed layout.

It needs no forward pass of the base LM (`observe_kwargs = {"forward": False}`): its own pass of the
adapted copy is the one pass per chain (per refresh).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..observe import Observation
from ..predictor_dir import check_fingerprint, read_metadata
from .base import Scorer

KIND = "lm-ranker"


class FinetunedScorer(Scorer):
    """Scores of a fine-tuned LM ranker loaded from `path` on top of `lm` (its base LM)."""

    name = "finetuned"

    def __init__(self, path: str | Path, lm, check_lm: bool = True, ranker=None, metadata: dict | None = None):
        from ..lm_ranker import LMRanker

        self.path = Path(path) if path is not None else None
        self.metadata = metadata if metadata is not None else read_metadata(self.path)
        if self.metadata.get("regressor") != KIND:
            raise ValueError(f"{self.path}: not a fine-tuned LM predictor (regressor {self.metadata.get('regressor')!r})")
        if check_lm:
            check_fingerprint(self.metadata, lm, f"predictor {self.path}")
        self.ranker = ranker if ranker is not None else LMRanker.load(self.path, lm)
        self.observe_kwargs = {"forward": False}

    def score(self, obs: Observation) -> np.ndarray:
        return np.nan_to_num(self.ranker.score_layouts([obs.layout])[0], nan=0.0)

    def extra_forward_passes(self, n: int) -> int:
        return 0  # its adapted-LM pass replaces the shared observation pass
