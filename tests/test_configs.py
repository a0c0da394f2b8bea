"""configs/*.json: every input a config names under data/ is a tracked file, so a fresh clone can run it."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.json"))


def _inputs(cfg: dict) -> list[str]:
    out = []
    for key in ("data", "domain-data", "extra-train", "policy-states"):
        value = cfg.get(key)
        out += value if isinstance(value, list) else [value] if isinstance(value, str) else []
    return out


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_data_inputs_exist(path):
    cfg = json.loads(path.read_text())
    missing = [p for p in _inputs(cfg) if not p.startswith("runs/") and not (ROOT / p).is_file()]
    assert not missing, f"{path.name} names inputs that are not in the repository: {missing}"


# each shipped predictor and the config that reproduces it
SHIPPED_CONFIGS = {"smollm2-joint": "smollm2-joint.json", "smollm2-joint-loo": "smollm2-joint-loo.json",
                   "gemma3-270m-joint": "gemma3-270m-joint.json", "universal": "universal.json"}


def _sha256(rel: str) -> str:
    return hashlib.sha256((ROOT / rel).read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(SHIPPED_CONFIGS))
def test_each_shipped_predictors_config_names_the_very_files_it_trained_on(name):
    """A data file that grows after a predictor shipped must be frozen (data/ranked/*/frozen/) and its config
    pointed there, or the config no longer reproduces the predictor."""
    meta = json.loads((ROOT / "predictor" / "pretrained" / name / "predictor.json").read_text())
    cfg = json.loads((ROOT / "configs" / SHIPPED_CONFIGS[name]).read_text())
    assert meta["train_data_sha256"] == _sha256(cfg["data"])
    assert sorted(d["sha256"] for d in meta.get("domain_data", [])) == sorted(map(_sha256, cfg.get("domain-data", [])))
    extra = cfg.get("extra-train") or []
    extra = [extra] if isinstance(extra, str) else extra
    recorded = meta.get("extra_train_data")
    shas = [meta["extra_train_data_sha256"]] if isinstance(recorded, str) else [d["sha256"] for d in recorded or []]
    assert sorted(shas) == sorted(map(_sha256, extra))
