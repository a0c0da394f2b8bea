"""Predictor directories: atomic save, identical predictions after load, clear errors, no pickle."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from predictor.predictor_dir import METADATA_FILE, REQUIRED_KEYS, PredictorLoadError, load_predictor, save_predictor
from predictor.regressors import make_regressor


def _meta(n_features: int) -> dict:
    return {"lm_fingerprint": "abc123", "lm_name": "tiny", "feature_spec": {"groups": ["logits"]},
            "feature_names": [f"f{i}" for i in range(n_features)], "objective": "joint",
            "train_data_sha256": "0" * 64, "n_train_chains": 3, "metrics": {"val": {"mean": 0.5}}}


@pytest.fixture(scope="module")
def chains():
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(int(n), 4)).astype(np.float32) for n in rng.integers(5, 15, size=12)]
    y = [np.argsort(np.argsort(x[:, 0])) / (len(x) - 1) for x in X]
    return X, y


@pytest.mark.parametrize("kind", ["lgbm-lambdarank", "sequence"])
def test_roundtrip_identical_and_never_unpickles(kind, chains, tmp_path, monkeypatch):
    X, y = chains
    params = {"n_estimators": 20, "min_child_samples": 3} if kind.startswith("lgbm") else {"max_epochs": 2, "hidden": 8}
    reg = make_regressor(kind, **params).fit(X[:8], y[:8], X[8:], y[8:])
    d = save_predictor(tmp_path / "p", reg, _meta(4))
    meta = json.loads((d / METADATA_FILE).read_text())
    assert set(REQUIRED_KEYS) <= set(meta) and meta["regressor"] == kind

    def boom(*a, **k):
        raise AssertionError("loading a predictor must never unpickle")

    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(torch, "load", boom)
    loaded, meta2 = load_predictor(d)
    assert meta2 == meta
    for a, b in zip(reg.predict(X), loaded.predict(X)):
        np.testing.assert_array_equal(a, b)


def test_save_replaces_atomically_and_leaves_no_temp(chains, tmp_path):
    X, y = chains
    a = make_regressor("lgbm-regression", n_estimators=5, min_child_samples=3).fit(X, y)
    b = make_regressor("mlp", max_epochs=1, hidden=8).fit(X, y)
    save_predictor(tmp_path / "p", a, _meta(4))
    save_predictor(tmp_path / "p", b, _meta(4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]
    assert not (tmp_path / "p" / "model.txt").exists()
    assert load_predictor(tmp_path / "p")[1]["regressor"] == "mlp"
    with pytest.raises(ValueError, match="lacks"):
        save_predictor(tmp_path / "q", a, {"lm_name": "x"})
    assert not (tmp_path / "q").exists()


def test_failed_swap_keeps_the_previous_predictor(chains, tmp_path, monkeypatch):
    import os

    X, y = chains
    a = make_regressor("lgbm-regression", n_estimators=5, min_child_samples=3).fit(X, y)
    save_predictor(tmp_path / "p", a, _meta(4))
    real_replace = os.replace

    def flaky_replace(src, dst):  # the rename of the new directory into place fails (after the old one moved)
        if Path(src).name.startswith(".p.tmp-") and Path(dst) == tmp_path / "p":
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError, match="disk full"):
        save_predictor(tmp_path / "p", a, _meta(4))
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]
    assert load_predictor(tmp_path / "p")[1]["regressor"] == "lgbm-regression"


def test_corrupt_or_missing_directories_raise_clear_errors(chains, tmp_path):
    X, y = chains
    with pytest.raises(PredictorLoadError, match="does not exist"):
        load_predictor(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PredictorLoadError, match="predictor.json: missing"):
        load_predictor(tmp_path / "empty")
    reg = make_regressor("lgbm-regression", n_estimators=5, min_child_samples=3).fit(X, y)
    d = save_predictor(tmp_path / "p", reg, _meta(4))
    (d / METADATA_FILE).write_text("{not json")
    with pytest.raises(PredictorLoadError, match="predictor.json: not valid JSON"):
        load_predictor(d)
    d = save_predictor(tmp_path / "p", reg, _meta(5))  # metadata disagrees with the model
    with pytest.raises(PredictorLoadError, match="5 feature names"):
        load_predictor(d)
    d = save_predictor(tmp_path / "p", reg, _meta(4))
    (d / "model.txt").write_text("tree\nnonsense")
    with pytest.raises(PredictorLoadError, match="model.txt"):
        load_predictor(d)
    d = save_predictor(tmp_path / "p", reg, _meta(4))
    (d / "model.txt").unlink()
    with pytest.raises(PredictorLoadError, match="model.txt: missing"):
        load_predictor(d)


def test_split_records_returns_the_train_and_val_records_of_the_recorded_split(tmp_path):
    import json

    from predictor.predictor_dir import METADATA_FILE, pretrained_dir, split_records

    d = tmp_path / "pred"
    d.mkdir()
    meta = json.loads((pretrained_dir() / METADATA_FILE).read_text())  # a valid predictor.json, its split replaced
    (d / METADATA_FILE).write_text(json.dumps({**meta, "split": {"train": ["a", "c"], "val": ["b"], "test": ["d"]}}))
    f1, f2 = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    f1.write_text("".join(json.dumps({"id": i}) + "\n" for i in "abd") + "\n")
    f2.write_text(json.dumps({"id": "c"}) + "\n" + json.dumps({"id": "e"}) + "\n")
    assert split_records(d, [f1, f2]) == [("train", {"id": "a"}), ("val", {"id": "b"}), ("train", {"id": "c"})]
