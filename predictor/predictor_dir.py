"""Predictor directories: a trained regressor plus `predictor.json` metadata, saved atomically, and
the predictors shipped inside the package (predictor/pretrained/NAME).

    DIR/predictor.json      metadata: format_version, regressor (kind), lm_fingerprint, lm_name,
                            feature_spec, feature_names, objective, train_data_sha256,
                            n_train_chains, metrics, package_version, created (+ anything extra)
    DIR/regressor.json      the regressor's hyper-parameters and fitted scalars
    DIR/model.txt | model.safetensors   LightGBM text model | torch weights

Nothing is pickled: loading reads JSON, LightGBM text and safetensors only.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .jsonl_io import atomic_write_text, read_json_object

FORMAT_VERSION = 1
METADATA_FILE = "predictor.json"
REQUIRED_KEYS = ("format_version", "regressor", "lm_fingerprint", "lm_name", "feature_spec", "feature_names",
                 "objective", "train_data_sha256", "n_train_chains", "metrics", "package_version", "created")


PRETRAINED_NAME = "smollm2-joint"


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


class PredictorMismatchError(ValueError):
    """A predictor was trained for another LM than the one it is asked to score with.

    cause: the mismatch alone, without the remedies (callers that offer their own remedies say it)."""

    def __init__(self, message: str, cause: str | None = None):
        super().__init__(message)
        self.cause = cause if cause is not None else message


# the remedies the fingerprint error names, in the API's words; the CLI says them as options (CLI_REMEDY)
API_REMEDY = {"universal": 'RankPredictor.load("universal", lm=...)', "override": "check_lm=False"}
CLI_REMEDY = {"universal": "--predictor universal", "override": "--no-check-lm"}


def cli_mismatch_error(err: PredictorMismatchError) -> PredictorMismatchError:
    """The fingerprint error as the command line says it: its remedies name the CLI options."""
    msg = str(err)
    for k, v in API_REMEDY.items():
        msg = msg.replace(v, CLI_REMEDY[k])
    return PredictorMismatchError(msg, err.cause)


def check_fingerprint(metadata: dict[str, Any], lm, where: str = "predictor") -> None:
    """Raise PredictorMismatchError naming both fingerprints when `lm` is not the predictor's LM.

    Predictors whose features are all LM-agnostic (metadata "lm_agnostic": true) accept any LM."""
    if metadata.get("lm_agnostic"):
        return
    want = metadata.get("lm_fingerprint")
    if want and lm is not None and lm.fingerprint != want:
        cause = (f"{where} was trained for LM {metadata.get('lm_name', '?')!r} (fingerprint {want}) but the LM "
                 f"given is {lm.name!r} (fingerprint {lm.fingerprint}); its features would be meaningless.")
        raise PredictorMismatchError(
            f"{cause} Load the matching LM, use the LM-agnostic predictor ({API_REMEDY['universal']}), or pass "
            f"{API_REMEDY['override']} to override.", cause)


# metadata keys that do not change a predictor's scores (what select-prune writes, the evaluation)
_NOT_SCORING = ("prune", "metrics", "created", "package_version")


def predictor_fingerprint(directory: str | Path) -> str:
    """12 hex digits identifying what a predictor directory scores with: SHA-256 over every file's
    relative path and bytes (sorted), predictor.json without its prune settings, metrics and dates.
    Two folders of one name trained differently differ; select-prune rewriting the prune settings
    does not change it. Raises PredictorLoadError for a directory without a readable predictor.json."""
    root = Path(directory)
    meta = read_json_object(root / METADATA_FILE, PredictorLoadError, "missing (not a predictor directory)")
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in meta.items() if k not in _NOT_SCORING}, sort_keys=True,
                        default=_json_default).encode("utf-8"))
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.name != METADATA_FILE):
        h.update(f.relative_to(root).as_posix().encode("utf-8") + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def regressor_kind(path: Path) -> str | None:
    """The "regressor" field of a predictor directory's predictor.json (None if unreadable: the
    loader that follows reports the problem)."""
    try:
        return json.loads((path / METADATA_FILE).read_text()).get("regressor")
    except (OSError, ValueError, AttributeError):
        return None


# --- the predictors shipped inside the package ------------------------------------------------------
def pretrained_dir(name: str = PRETRAINED_NAME) -> Path:
    """Folder of a predictor shipped inside the package (predictor/pretrained/NAME)."""
    return Path(__file__).resolve().parent / "pretrained" / name


# an older name of the shipped SmolLM2 predictor: "learned" loads predictor/pretrained/smollm2-joint whatever
# the LM (a trained directory is loaded by its path)
LEARNED_ALIAS = "learned"


def named_predictor_dir(name: str) -> Path | None:
    """The folder a shipped predictor's name stands for (`shipped_predictors`, or LEARNED_ALIAS: smollm2-joint);
    None for any other name (a directory path, a scorer)."""
    if name == LEARNED_ALIAS:
        return pretrained_dir()
    return shipped_predictors().get(name)


def shipped_predictors() -> dict[str, Path]:
    """Name -> directory of every predictor shipped in predictor/pretrained."""
    root = pretrained_dir().parent
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / METADATA_FILE).is_file()}


def shipped_predictor_for(field: str, value: str) -> Path:
    """The shipped LM-specific one-pass predictor whose predictor.json stores `field` == `value`
    ("lm_fingerprint" or "lm_name"); predictor/pretrained/smollm2-joint when none does. Predictors whose
    features run extra LM passes (`features.SEARCH_GROUPS`, e.g. smollm2-joint-loo) are never the default:
    they are loaded by name."""
    for path in shipped_predictors().values():
        meta = read_metadata(path)
        if not meta.get("lm_agnostic") and meta.get(field) == value and not search_groups(meta):
            return path
    return pretrained_dir()


def search_groups(meta: dict[str, Any]) -> list[str]:
    """The feature groups of a predictor's metadata that run LM passes beyond the shared forward (loo)."""
    from .features import SEARCH_GROUPS

    spec = meta.get("feature_spec")
    return [g for g in (spec.get("groups", ()) if isinstance(spec, dict) else ()) if g in SEARCH_GROUPS]


def split_records(directory: str | Path, files: Iterable[str | Path]) -> list[tuple[str, dict[str, Any]]]:
    """(part, record) of every record of the ranked `files` that the predictor in `directory` trained on
    ("train") or selected on ("val"), by the split its predictor.json recorded; other records (its test
    chains, chains it never saw) are left out. In file order."""
    meta = read_metadata(directory)
    split = meta.get("split") or {}
    train, val = set(split.get("train", ())), set(split.get("val", ()))
    out = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    r = json.loads(line)
                    part = "val" if r["id"] in val else "train" if r["id"] in train else None
                    if part:
                        out.append((part, r))
    return out


LOO_SECONDS_AT_100 = 17.5  # smollm2-joint-loo's predict_ranks of a 100-token chain, one CPU thread (16-19 s)


def extra_pass_note(name: str, meta: dict[str, Any], n: int | None = None) -> str | None:
    """The cost note of predictor `name` whose metadata `meta` names a search group (`search_groups`), for
    stderr before a run starts; None for a one-pass predictor. n: reasoning tokens of the longest chain to
    rank, for an estimate of its cost."""
    groups = search_groups(meta)
    if not groups:
        return None
    text = (f"note: predictor {name!r} ({'+'.join(groups)} features) scores every single deletion "
            "exactly: n extra candidate scorings per chain of n reasoning tokens (~n^2/2 LM tokens) beyond its "
            "one forward pass, again at each refresh pass (smollm2-joint-loo: 16-19 s for a 100-token chain on one "
            "CPU thread against ~1-7 s for one pass; docs/quality.md §14)")
    if n:
        seconds = LOO_SECONDS_AT_100 * (n / 100) ** 2
        text += (f"; the longest chain here: {n} tokens, ~{n * (n + 1) // 2:,} LM tokens, roughly "
                 f"{'<1' if seconds < 1 else f'{seconds:.0f}'} s on one CPU thread at smollm2-joint-loo's rate")
    return text


def prune_defaults_of(meta: dict[str, Any], directory: str | Path | None = None) -> dict[str, float]:
    """The "prune" entry of a predictor's metadata as {"gap_cost", "position_weight"} (floats; {} without
    one): `prune`'s default contiguity settings. Raises ValueError naming DIR/predictor.json for an entry
    that is not an object of valid values (`prune_options.check_contiguity`)."""
    from .prune_options import check_contiguity

    entry = meta.get("prune") or {}
    where = f"{Path(directory or '.') / METADATA_FILE}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: 'prune' must be an object {{\"gap_cost\": C, \"position_weight\": W}}, "
                         f"got {entry!r}")
    out = {k: v for k, v in entry.items() if k in ("gap_cost", "position_weight")}
    try:
        check_contiguity(out.get("gap_cost"), out.get("position_weight"))
    except ValueError as e:
        raise ValueError(f"{where}: prune.{e}") from None
    return {k: float(v) for k, v in out.items()}


def lm_name_for(fingerprint: str) -> str | None:
    """The LM name ("gemma-3-270m.Q4_K_M") that a shipped predictor's predictor.json stores with
    `fingerprint`, for naming the LM of a file that stores only its fingerprint; None if none does."""
    for path in shipped_predictors().values():
        meta = read_metadata(path)
        if meta.get("lm_fingerprint") == fingerprint and meta.get("lm_name"):
            return str(meta["lm_name"])
    return None


def default_predictor_dir(lm) -> Path:
    """The shipped predictor trained for `lm` (by fingerprint); the SmolLM2 one when `lm` is None or
    no shipped predictor was trained for it (loading it for another LM then raises
    PredictorMismatchError, which names the LM-agnostic "universal" predictor as the way out)."""
    return pretrained_dir() if lm is None else shipped_predictor_for("lm_fingerprint", lm.fingerprint)


def default_predictor_dir_for_model(model: str | None) -> Path:
    """The shipped predictor trained for the LM that `load_lm(model)` would load, found without loading
    it: by the display name its predictor.json stores (an embedded LM's name, or a directory's own
    name). Used to check a resumed output's settings before the LM loads; `RankPredictor.load`
    decides by fingerprint once it has the LM."""
    from .lm import EMBEDDED_LMS

    key = model or "default"
    return shipped_predictor_for("lm_name", EMBEDDED_LMS[key].name if key in EMBEDDED_LMS else Path(key).name)
