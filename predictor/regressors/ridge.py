"""Ridge regression of the normalized greedy rank on standardized per-token features: the linear-probe
baseline (a linear read-out of the LM's internal state, as in probing studies; Alain & Bengio 2016).

fit() standardizes every column with the training mean/std (clipped to +-clip), picks the L2 penalty
among `alphas` by validation per-chain Spearman (or uses the middle one without validation data) and
fits scikit-learn's `Ridge`. save() writes model.safetensors (coef, mean, std) and regressor.json
(hyper-parameters, alpha, intercept); nothing is pickled.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import (RankRegressor, RegressorLoadError, check_xy, mean_chain_spearman, read_config, split_rows,
                   write_config)

WEIGHTS_FILE = "model.safetensors"


class RidgeRankRegressor(RankRegressor):
    """Linear scores w . standardized(x) + b per token; `predict` returns [n_i] per chain."""

    fitted_attr = "coef_"

    kind = "ridge"

    def __init__(self, alphas: Sequence[float] = (1.0, 10.0, 100.0, 1000.0, 10000.0), clip: float = 10.0,
                 seed: int = 0, progress: bool = False):
        self.alphas = tuple(float(a) for a in alphas)
        self.clip = clip
        self.seed = seed  # unused (Ridge is deterministic); kept for the common interface
        self.progress = progress
        if not self.alphas or min(self.alphas) <= 0:
            raise ValueError(f"alphas must be positive, got {alphas!r}")

    def _standardize(self, X: list[np.ndarray]) -> np.ndarray:
        return np.clip((np.concatenate(X) - self.mean_) / self.std_, -self.clip, self.clip)

    def fit(self, X: Sequence[np.ndarray], y: Sequence[np.ndarray], X_val: Sequence[np.ndarray] | None = None,
            y_val: Sequence[np.ndarray] | None = None, feature_names: list[str] | None = None) -> "RidgeRankRegressor":
        """Fit on chains X [n_i, F] with normalized ranks y [n_i]; choose alpha on validation Spearman."""
        from sklearn.linear_model import Ridge

        Xs, ys = check_xy(X, y)
        flat = np.concatenate(Xs).astype(np.float64)
        self.mean_ = flat.mean(0)
        self.std_ = np.maximum(flat.std(0), 1e-6)
        self.n_features_ = Xs[0].shape[1]
        Z, t = self._standardize(Xs), np.concatenate(ys)
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val (to choose alpha) or neither")
        candidates = self.alphas if X_val is not None else (self.alphas[len(self.alphas) // 2],)
        best = (-np.inf, None, None)
        for a in candidates:
            model = Ridge(alpha=a).fit(Z, t)
            self.coef_, self.intercept_ = model.coef_.astype(np.float64), float(model.intercept_)
            score = mean_chain_spearman(self.predict(X_val), y_val) if len(candidates) > 1 else 0.0
            if score > best[0]:
                best = (score, a, (self.coef_, self.intercept_))
        self.alpha_ = best[1]
        self.coef_, self.intercept_ = best[2]
        return self

    def predict(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        self._check_fitted()
        Xs, _ = check_xy(X, n_features=self.n_features_)
        return split_rows(self._standardize(Xs) @ self.coef_ + self.intercept_, Xs)

    def save(self, directory: str | Path) -> None:
        import torch
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: torch.from_numpy(np.asarray(getattr(self, k + "_"), dtype=np.float64)) for k in
                   ("coef", "mean", "std")}, str(d / WEIGHTS_FILE))
        write_config(d, self.kind, self.get_params(), {"n_features": self.n_features_, "alpha": self.alpha_,
                                                       "intercept": self.intercept_})

    @classmethod
    def load(cls, directory: str | Path) -> "RidgeRankRegressor":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        d = Path(directory)
        cfg = read_config(d, "ridge")
        try:
            t = load_file(str(d / WEIGHTS_FILE))
            self = cls(**cfg["params"])
            self.coef_, self.mean_, self.std_ = (t[k].numpy() for k in ("coef", "mean", "std"))
            st = cfg["state"]
            self.n_features_, self.alpha_, self.intercept_ = int(st["n_features"]), st["alpha"], float(st["intercept"])
        except (SafetensorError, OSError) as e:
            raise RegressorLoadError(f"{d / WEIGHTS_FILE}: missing or invalid ({e})") from None
        except KeyError as e:
            raise RegressorLoadError(f"{d}: missing entry {e} in {WEIGHTS_FILE} or regressor.json") from None
        if not len(self.coef_) == len(self.mean_) == len(self.std_) == self.n_features_:
            raise RegressorLoadError(f"{d / WEIGHTS_FILE}: weights do not match regressor.json")
        return self
