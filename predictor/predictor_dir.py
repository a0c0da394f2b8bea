"""Predictor directories: a trained regressor plus `predictor.json` metadata, saved atomically.

    DIR/predictor.json      metadata: format_version, regressor (kind), lm_fingerprint, lm_name,
                            feature_spec, feature_names, objective, train_data_sha256,
                            n_train_chains, metrics, package_version, created (+ anything extra)
    DIR/regressor.json      the regressor's hyper-parameters and fitted scalars
    DIR/model.txt | model.safetensors   LightGBM text model | torch weights

Nothing is pickled: loading reads JSON, LightGBM text and safetensors only.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .jsonl_io import atomic_write_text, read_json_object

FORMAT_VERSION = 1
METADATA_FILE = "predictor.json"
REQUIRED_KEYS = ("format_version", "regressor", "lm_fingerprint", "lm_name", "feature_spec", "feature_names",
                 "objective", "train_data_sha256", "n_train_chains", "metrics", "package_version", "created")


class PredictorLoadError(ValueError):
    """A predictor directory is missing, incomplete or corrupt (the message names the file)."""


def save_predictor(directory: str | Path, regressor: Any, metadata: dict[str, Any]) -> Path:
    """Write regressor + metadata to `directory` atomically (temp dir, then rename; replaces an old one).

    Missing standard keys are filled: format_version, regressor (kind), package_version, created.
    """
    from . import __version__

    d = Path(directory)
    meta = dict(metadata)
    meta.setdefault("format_version", FORMAT_VERSION)
    meta["regressor"] = getattr(regressor, "kind", meta.get("regressor"))
    meta.setdefault("package_version", __version__)
    meta.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ValueError(f"predictor metadata lacks {missing}")
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = d.parent / f".{d.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    old = d.parent / f".{d.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        regressor.save(tmp)
        atomic_write_text(tmp / METADATA_FILE, json.dumps(meta, indent=1, sort_keys=True, default=_json_default))
        for f in tmp.rglob("*"):  # some writers create 0600 files; shipped predictors must be readable
            f.chmod(0o755 if f.is_dir() else 0o644)
        tmp.chmod(0o755)
        if d.exists():
            os.replace(d, old)
        os.replace(tmp, d)
    finally:
        if old.exists() and not d.exists():  # the swap failed half-way: put the previous predictor back
            os.replace(old, d)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return d


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"metadata value of type {type(o).__name__} is not JSON serializable")


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """predictor.json of a directory; PredictorLoadError naming the file and the problem."""
    d = Path(directory)
    if not d.is_dir():
        raise PredictorLoadError(f"{d}: predictor directory does not exist")
    path = d / METADATA_FILE
    meta = read_json_object(path, PredictorLoadError, "missing (not a predictor directory)")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise PredictorLoadError(f"{path}: missing keys {missing}")
    if meta["format_version"] != FORMAT_VERSION:
        raise PredictorLoadError(f"{path}: format_version {meta['format_version']!r} is not supported "
                                 f"(this package reads {FORMAT_VERSION})")
    return meta


def load_predictor(directory: str | Path) -> tuple[Any, dict[str, Any]]:
    """(regressor, metadata) of a predictor directory; never unpickles."""
    from .regressors import load_regressor
    from .regressors.base import RegressorLoadError

    meta = read_metadata(directory)
    try:
        reg = load_regressor(directory)
    except RegressorLoadError as e:
        raise PredictorLoadError(str(e)) from None
    if getattr(reg, "kind", None) != meta["regressor"]:
        raise PredictorLoadError(f"{Path(directory) / METADATA_FILE}: says regressor {meta['regressor']!r} but "
                                 f"regressor.json holds {getattr(reg, 'kind', None)!r}")
    if getattr(reg, "n_features_", len(meta["feature_names"])) != len(meta["feature_names"]):
        raise PredictorLoadError(f"{Path(directory) / METADATA_FILE}: {len(meta['feature_names'])} feature names "
                                 f"but the model expects {reg.n_features_} features")
    return reg, meta
