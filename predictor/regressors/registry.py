"""The one registry of regressor kinds: kind -> the class that fits it and its fixed arguments.

A new regressor is a `base.RankRegressor` subclass in its own file plus one line here. The classes are
named, not imported, so that loading one kind never imports the others' libraries (LightGBM, torch)
and so that the ensemble, whose members are regressors of any kind, can use this table too.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .base import RegressorLoadError, read_config

# kind -> (module of this package, class, fixed __init__ arguments)
REGISTRY: dict[str, tuple[str, str, dict[str, Any]]] = {
    "lgbm-regression": ("lgbm", "LGBMRankRegressor", {"objective": "regression"}),
    "lgbm-lambdarank": ("lgbm", "LGBMRankRegressor", {"objective": "lambdarank"}),
    "lgbm-xendcg": ("lgbm", "LGBMRankRegressor", {"objective": "rank_xendcg"}),
    "mlp": ("neural", "NeuralRankRegressor", {"kind": "mlp"}),
    "sequence": ("neural", "NeuralRankRegressor", {"kind": "sequence"}),
    "ensemble": ("ensemble", "EnsembleRegressor", {}),
    "ridge": ("ridge", "RidgeRankRegressor", {}),
}
REGRESSOR_KINDS = tuple(REGISTRY)


def regressor_class(kind: str) -> type:
    module, name, _ = REGISTRY[kind]
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def make_regressor(kind: str, **params: Any):
    """A new, unfitted regressor of this kind; params go to its __init__."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown regressor {kind!r}; choose from {', '.join(REGRESSOR_KINDS)}")
    fixed = REGISTRY[kind][2]
    clash = sorted(set(fixed) & set(params))
    if clash:
        raise ValueError(f"regressor {kind!r} fixes {', '.join(f'{k}={fixed[k]!r}' for k in clash)}; "
                         "choose another kind instead of passing it")
    return regressor_class(kind)(**fixed, **params)


def load_regressor(directory: str | Path):
    """Load a saved regressor of any kind (reads regressor.json to dispatch)."""
    kind = read_config(directory)["kind"]
    if kind not in REGISTRY:
        raise RegressorLoadError(f"{Path(directory) / 'regressor.json'}: unknown regressor kind {kind!r}")
    return regressor_class(kind).load(directory)
