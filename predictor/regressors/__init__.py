"""Regressors of the normalized greedy rank, all with one scikit-learn style interface.

    reg = make_regressor("lgbm-lambdarank", seed=0)
    reg.fit(X_train, y_train, X_val, y_val)        # lists of per-chain [n_i, F] / [n_i]
    scores = reg.predict(X_test)                   # list of [n_i]; higher = kept longer
    reg.save("dir"); reg = load_regressor("dir")   # LightGBM text / safetensors + JSON, never pickle

Kinds: "lgbm-regression", "lgbm-lambdarank", "lgbm-xendcg" (lgbm.py), "mlp" (per-token MLP) and "sequence"
(transformer encoder or BiGRU over the chain) (neural.py), and "ensemble" (rank average of members,
ensemble.py), and "ridge" (linear probe on standardized features, ridge.py); `registry` names them all,
`base.RankRegressor` is what they share.
"""
from .base import RankRegressor, RegressorLoadError
from .registry import REGRESSOR_KINDS, load_regressor, make_regressor

__all__ = ["REGRESSOR_KINDS", "RankRegressor", "RegressorLoadError", "make_regressor", "load_regressor"]
