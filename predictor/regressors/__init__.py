"""Regressors of the normalized greedy rank, all with one scikit-learn style interface.

    reg = make_regressor("lgbm-lambdarank", seed=0)
    reg.fit(X_train, y_train, X_val, y_val)        # lists of per-chain [n_i, F] / [n_i]
    scores = reg.predict(X_test)                   # list of [n_i]; higher = kept longer
    reg.save("dir"); reg = load_regressor("dir")   # LightGBM text / safetensors + JSON, never pickle

Kinds: "lgbm-regression", "lgbm-lambdarank" (lgbm.py), "mlp" (per-token MLP) and "sequence"
(transformer encoder or BiGRU over the chain) (neural.py), and "ensemble" (rank average of members,
ensemble.py), and "ridge" (linear probe on standardized features, ridge.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import RegressorLoadError, read_config

REGRESSOR_KINDS = ("lgbm-regression", "lgbm-lambdarank", "mlp", "sequence", "ensemble", "ridge")

__all__ = ["REGRESSOR_KINDS", "RegressorLoadError", "make_regressor", "load_regressor"]


def make_regressor(kind: str, **params: Any):
    """A new, unfitted regressor of this kind; params go to its __init__."""
    if kind in ("lgbm-regression", "lgbm-lambdarank"):
        from .lgbm import LGBMRankRegressor

        return LGBMRankRegressor(objective=kind.split("-", 1)[1], **params)
    if kind in ("mlp", "sequence"):
        from .neural import NeuralRankRegressor

        return NeuralRankRegressor(kind=kind, **params)
    if kind == "ensemble":
        from .ensemble import EnsembleRegressor

        return EnsembleRegressor(**params)
    if kind == "ridge":
        from .ridge import RidgeRankRegressor

        return RidgeRankRegressor(**params)
    raise ValueError(f"unknown regressor {kind!r}; choose from {', '.join(REGRESSOR_KINDS)}")


def load_regressor(directory: str | Path):
    """Load a saved regressor of any kind (reads regressor.json to dispatch)."""
    kind = read_config(directory)["kind"]
    if kind.startswith("lgbm-"):
        from .lgbm import LGBMRankRegressor

        return LGBMRankRegressor.load(directory)
    if kind in ("mlp", "sequence"):
        from .neural import NeuralRankRegressor

        return NeuralRankRegressor.load(directory)
    if kind == "ensemble":
        from .ensemble import EnsembleRegressor

        return EnsembleRegressor.load(directory)
    if kind == "ridge":
        from .ridge import RidgeRankRegressor

        return RidgeRankRegressor.load(directory)
    raise RegressorLoadError(f"{Path(directory) / 'regressor.json'}: unknown regressor kind {kind!r}")
