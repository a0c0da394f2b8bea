"""LM loading: local directories, fingerprints, clear errors."""
from __future__ import annotations

import pytest

from predictor.lm import LMLoadError, load_lm


def test_load_local_dir_same_fingerprint(tiny_lm, tmp_path):
    tiny_lm.model.save_pretrained(tmp_path)
    tiny_lm.tokenizer.save_pretrained(tmp_path)
    lm = load_lm(str(tmp_path), device="cpu", dtype="float64")
    assert lm.fingerprint == tiny_lm.fingerprint
    assert lm.device.type == "cpu" and lm.num_layers == 2


def test_fingerprint_changes_with_weights(tokenizer, tiny_lm):
    from conftest import make_tiny_lm

    assert make_tiny_lm(tokenizer, seed=1).fingerprint != tiny_lm.fingerprint


def test_load_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LMLoadError, match="no config.json"):
        load_lm(str(tmp_path / "empty"))
    with pytest.raises(LMLoadError, match="unknown dtype"):
        load_lm(str(tmp_path / "empty"), dtype="float7")
