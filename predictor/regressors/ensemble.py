"""Rank-averaging ensemble of regressors (Borda count over the members' within-chain rankings).

Each member scores a chain; the scores become within-chain ranks scaled to [0, 1], and the ensemble
score is their mean. Averaging ranks rather than raw scores makes members with different output
scales (LightGBM regression, LambdaRank, networks) count equally. Saved as one sub-directory per
member (each an ordinary regressor directory) plus regressor.json; nothing is pickled.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from ..ranks import normalized_ranks
from .base import RankRegressor, RegressorLoadError, check_xy, read_config, write_config

KIND = "ensemble"


class EnsembleRegressor(RankRegressor):
    """Mean within-chain rank of several regressors; `predict` returns a score per token [n_i]."""

    fitted_attr = "members_"

    def __init__(self, kinds: Sequence[str] = ("lgbm-regression", "lgbm-lambdarank", "mlp"),
                 member_params: dict[str, dict[str, Any]] | None = None, seed: int = 0, progress: bool = False):
        if not kinds:
            raise ValueError("an ensemble needs at least one member kind")
        self.kinds = tuple(kinds)
        self.member_params = dict(member_params or {})
        self.seed = seed
        self.progress = progress

    kind = KIND

    @classmethod
    def from_fitted(cls, members: Sequence[Any], seed: int = 0) -> "EnsembleRegressor":
        """An ensemble of already fitted regressors (no retraining)."""
        if not members:
            raise ValueError("an ensemble needs at least one member")
        n = {m.n_features_ for m in members}
        if len(n) != 1:
            raise ValueError(f"members were fitted on different feature counts: {sorted(n)}")
        self = cls([m.kind for m in members], {m.kind: m.get_params() for m in members}, seed)
        self.members_ = list(members)
        self.n_features_ = n.pop()
        return self

    def fit(self, X: Sequence[np.ndarray], y: Sequence[np.ndarray], X_val: Sequence[np.ndarray] | None = None,
            y_val: Sequence[np.ndarray] | None = None, feature_names: list[str] | None = None) -> "EnsembleRegressor":
        """Fit every member on the same data (each early-stops on the validation chains)."""
        from .registry import make_regressor

        members = []
        for kind in self.kinds:
            params = {"seed": self.seed, "progress": self.progress, **self.member_params.get(kind, {})}
            members.append(make_regressor(kind, **params).fit(X, y, X_val, y_val, feature_names=feature_names))
        self.members_ = members
        self.n_features_ = members[0].n_features_
        return self

    def predict(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Mean within-chain unit rank over members, per chain [n_i]; higher = kept longer."""
        self._check_fitted()
        Xs, _ = check_xy(X, n_features=self.n_features_)
        preds = [m.predict(Xs) for m in self.members_]
        return [np.mean([normalized_ranks(rankdata(p[i])) for p in preds], axis=0) for i in range(len(Xs))]

    def save(self, directory: str | Path) -> None:
        """member<k>/ (each a regressor directory) + regressor.json."""
        self._check_fitted()
        d = Path(directory)
        names = []
        for k, m in enumerate(self.members_):
            names.append(f"member{k}")
            m.save(d / names[-1])
        write_config(d, KIND, self.get_params(), {"n_features": self.n_features_, "members": names})

    @classmethod
    def load(cls, directory: str | Path) -> "EnsembleRegressor":
        from .registry import load_regressor

        d = Path(directory)
        cfg = read_config(d, KIND)
        self = cls(**cfg["params"])
        names = cfg["state"].get("members") or []
        if len(names) != len(self.kinds) or any(not isinstance(n, str) or "/" in n or n.startswith(".")
                                                for n in names):
            raise RegressorLoadError(f"{d / 'regressor.json'}: bad member list {names!r}")
        self.members_ = [load_regressor(d / n) for n in names]
        self.n_features_ = int(cfg["state"]["n_features"])
        if any(m.n_features_ != self.n_features_ for m in self.members_):
            raise RegressorLoadError(f"{d}: members disagree with regressor.json on the feature count")
        return self
