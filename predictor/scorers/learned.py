"""Learned predictors as scorers: features of one observation -> a trained regressor -> scores.

A predictor directory (predictor/predictor_dir.py) holds the regressor and `predictor.json`
metadata: the LM fingerprint it was trained for, the feature spec and the feature names. The
regressor predicts the normalized greedy rank (0 = pruned first, 1 = kept longest) of each token.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..observe import Observation
from ..predictor_dir import PredictorMismatchError, check_fingerprint, pretrained_dir
from .base import Scorer

__all__ = ["LearnedScorer", "PredictorMismatchError", "check_fingerprint"]


class LearnedScorer(Scorer):
    """Scores from a trained regressor on `features_from_observation(obs, spec)` [n, F] -> [n].

    Build from a loaded predictor (`LearnedScorer(regressor, metadata)`) or a directory
    (`LearnedScorer(path=DIR)`); with neither, the shipped pretrained predictor is loaded.
    """

    name = "learned"

    def __init__(self, regressor: Any = None, metadata: dict[str, Any] | None = None,
                 path: str | Path | None = None, check_lm: bool = True):
        if regressor is None:
            path = Path(path) if path is not None else pretrained_dir()
            if not path.exists():
                hint = " (the shipped pretrained predictor is missing; train one with `predictor train`)" \
                    if path == pretrained_dir() else ""
                raise FileNotFoundError(f"predictor directory {path} does not exist{hint}")
            from ..predictor_dir import load_predictor  # looked up at call time (tests stand in for it)

            regressor, metadata = load_predictor(path)
        if metadata is None:
            raise ValueError("LearnedScorer needs the predictor metadata (feature_spec, feature_names)")
        for key in ("feature_spec", "feature_names"):
            if key not in metadata:
                raise ValueError(f"predictor metadata has no {key!r}" + (f" ({path})" if path else ""))
        from ..features import FeatureSpec

        self.regressor, self.metadata, self.path = regressor, metadata, path
        self.spec = FeatureSpec.from_dict(metadata["feature_spec"])
        self.feature_names = list(metadata["feature_names"])
        self.check_lm = check_lm
        self.needs_attention = self.spec.needs_attention  # type: ignore[misc]
        # the observation pass must match the one the features were trained on (probe text, window)
        self.observe_kwargs = self.spec.observe_kwargs()

    def check_columns(self, lm) -> None:
        """Raise ValueError when `lm`'s shape (layers, heads, hidden size) gives other feature columns than
        this predictor was trained on: checked at load when the fingerprint check is off (check_lm=False),
        before any chain is read, without running the LM (`features.feature_names`)."""
        from ..features import feature_names

        if getattr(lm, "model", None) is None:  # not a loaded LM (a stand-in): nothing to compare
            return
        hidden = int(getattr(lm.model.config.get_text_config(), "hidden_size", 0) or 0)
        names, _ = feature_names(self.spec, lm.num_layers, lm.num_heads, hidden)
        if list(names) != self.feature_names:
            who = f"predictor {self.path}" if self.path else "the predictor"
            raise ValueError(
                f"{who} was trained on {len(self.feature_names)} feature columns; LM {getattr(lm, 'name', '?')} "
                f"({lm.num_layers} layers x {lm.num_heads} heads, hidden size {hidden}) gives {len(names)}: an LM "
                "of another shape cannot use it even with the fingerprint check off; use a predictor trained for "
                "this LM, or the LM-agnostic 'universal'")

    def score(self, obs: Observation) -> np.ndarray:
        return self.score_many([obs])[0]

    def extra_forward_passes(self, n: int) -> int:
        # a search group (loo) scores every single deletion (n candidates) beyond the shared pass
        from ..features import SEARCH_GROUPS

        return n if SEARCH_GROUPS & set(self.spec.groups) else 0

    def score_many(self, observations: list[Observation]) -> list[np.ndarray]:
        """Scores of several observations with one regressor call (a sequence model batches them)."""
        if not observations:
            return []
        tables = [self._features(o) for o in observations]
        preds = self.regressor.predict([np.asarray(t.values, dtype=np.float32) for t in tables])
        out = []
        for o, pred in zip(observations, preds):
            pred = np.asarray(pred, dtype=np.float64)
            if pred.shape != (o.n,):
                raise ValueError(f"regressor returned shape {pred.shape} for {o.n} tokens")
            out.append(np.nan_to_num(pred, nan=0.0, posinf=1.0, neginf=0.0))
        return out

    def _features(self, obs: Observation):
        from ..features import features_from_observation

        if self.check_lm:
            check_fingerprint(self.metadata, obs.lm, f"predictor {self.path or ''}".strip())
        table = features_from_observation(obs, self.spec)
        if list(table.names) != self.feature_names:
            extra = sorted(set(table.names) - set(self.feature_names))[:5]
            missing = sorted(set(self.feature_names) - set(table.names))[:5]
            raise ValueError(
                f"features computed ({len(table.names)}) differ from those the predictor was trained on "
                f"({len(self.feature_names)}): missing {missing}, unexpected {extra}; was it trained with "
                "another LM or package version?"
            )
        return table
