"""Shared pieces of the regressors: the scikit-learn style contract, input checks, JSON config files.

Contract (TEAM.md): parameters in `__init__`, fitted state in attributes ending in "_",
fit(X, y, X_val=None, y_val=None) -> self with X a list of per-chain float matrices [n_i, F] and y a
list of normalized greedy ranks [n_i] in [0, 1] (1 = kept longest); predict(X) -> list of [n_i]
scores (higher = kept longer); save(directory) / classmethod load(directory). Files are JSON,
LightGBM text models and safetensors only: nothing is ever pickled.
"""
from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..jsonl_io import read_json_object

CONFIG_FILE = "regressor.json"


class RegressorLoadError(ValueError):
    """A regressor directory is missing a file or holds an inconsistent one."""


class RankRegressor:
    """What every regressor shares: its parameters are its `__init__` arguments, each stored under its
    own name (so `get_params` cannot forget one), and it is fitted once `fitted_attr` is set."""

    kind: str
    fitted_attr: ClassVar[str] = "n_features_"

    def get_params(self) -> dict[str, Any]:
        """{name: value} of every `__init__` argument (tuples as lists: the JSON config's form)."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        return {n: list(v) if isinstance(v, tuple) else v for n, v in ((n, getattr(self, n)) for n in names)}

    def _check_fitted(self) -> None:
        if not hasattr(self, self.fitted_attr):
            raise RuntimeError("this regressor is not fitted yet; call fit() or load()")


def check_xy(X: Sequence[np.ndarray], y: Sequence[np.ndarray] | None = None,
             n_features: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Validate per-chain inputs; returns float32 matrices [n_i, F] and float64 targets [n_i]."""
    if isinstance(X, np.ndarray) and X.ndim == 2:
        raise ValueError("X must be a list of per-chain matrices [n_i, F], not one matrix")
    Xs = [np.asarray(x, dtype=np.float32) for x in X]
    if not Xs:
        raise ValueError("X is empty (no chains)")
    for i, x in enumerate(Xs):
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"chain {i}: expected a non-empty matrix [n, F], got shape {x.shape}")
        if n_features is not None and x.shape[1] != n_features:
            raise ValueError(f"chain {i}: {x.shape[1]} features, the regressor was fitted on {n_features}")
    if len({x.shape[1] for x in Xs}) != 1:
        raise ValueError("chains have different numbers of features")
    if y is None:
        return Xs, None
    ys = [np.asarray(t, dtype=np.float64).ravel() for t in y]
    if len(ys) != len(Xs):
        raise ValueError(f"{len(Xs)} feature matrices but {len(ys)} target vectors")
    for i, (x, t) in enumerate(zip(Xs, ys)):
        if len(t) != x.shape[0]:
            raise ValueError(f"chain {i}: {x.shape[0]} rows but {len(t)} targets")
        if not np.isfinite(t).all():
            raise ValueError(f"chain {i}: non-finite targets")
    return Xs, ys


def split_rows(flat: np.ndarray, X: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Cut a [sum n_i] prediction vector back into per-chain vectors."""
    cuts = np.cumsum([len(x) for x in X])[:-1]
    return [np.asarray(p, dtype=np.float64) for p in np.split(flat, cuts)]


def mean_chain_spearman(pred: Sequence[np.ndarray], true: Sequence[np.ndarray]) -> float:
    """Mean over chains of the Spearman correlation (0 for constant or one-token chains)."""
    from ..metrics import per_chain_spearman

    v = per_chain_spearman(list(pred), list(true))
    return float(v.mean()) if len(v) else float("nan")


def write_config(directory: str | Path, kind: str, params: dict[str, Any], state: dict[str, Any]) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / CONFIG_FILE
    path.write_text(json.dumps({"kind": kind, "params": params, "state": state}, indent=1, sort_keys=True))
    return path


def read_config(directory: str | Path, kind: str | None = None) -> dict[str, Any]:
    """The JSON config of a saved regressor; RegressorLoadError naming the file if absent/corrupt."""
    path = Path(directory) / CONFIG_FILE
    cfg = read_json_object(path, RegressorLoadError, "missing (not a saved regressor directory)")
    if not {"kind", "params", "state"} <= set(cfg):
        raise RegressorLoadError(f"{path}: expected an object with kind, params and state")
    if kind is not None and cfg["kind"] != kind:
        raise RegressorLoadError(f"{path}: holds a {cfg['kind']!r} regressor, expected {kind!r}")
    return cfg


CHAIN_FEATURES = ("none", "rank", "zscore")


def add_chain_features(X: Sequence[np.ndarray], mode: str) -> list[np.ndarray]:
    """Append within-chain normalized copies of every column: [n, F] -> [n, 2F] ("none": unchanged).

    "rank": each column's within-chain rank scaled to [0, 1] (ties averaged); "zscore": the column
    minus its chain mean over its chain std. The target is a within-chain rank, so a token's value
    relative to the other tokens of its chain is often more telling than its absolute value.
    """
    if mode not in CHAIN_FEATURES:
        raise ValueError(f"chain_features must be one of {CHAIN_FEATURES}, got {mode!r}")
    if mode == "none":
        return [np.asarray(x, dtype=np.float32) for x in X]
    from scipy.stats import rankdata

    out = []
    for x in X:
        x = np.asarray(x, dtype=np.float32)
        n = len(x)
        if mode == "rank":
            rel = (rankdata(x, axis=0) - 1) / max(n - 1, 1) if n > 1 else np.full_like(x, 0.5)
        else:
            rel = (x - x.mean(0)) / (x.std(0) + 1e-6)
        out.append(np.concatenate([x, rel.astype(np.float32)], axis=1))
    return out
