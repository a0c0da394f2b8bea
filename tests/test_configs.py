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


def test_frozen_aqua_file_is_the_one_the_shipped_predictors_trained_on():
    frozen = "data/ranked/aqua/frozen/aqua-smollm2-joint-136.jsonl"
    digest = hashlib.sha256((ROOT / frozen).read_bytes()).hexdigest()
    for name in ("smollm2-joint", "smollm2-joint-loo"):
        meta = json.loads((ROOT / "predictor" / "pretrained" / name / "predictor.json").read_text())
        shas = [d["sha256"] for d in meta["domain_data"]]
        assert digest in shas, f"{name} was not trained on {frozen}"
