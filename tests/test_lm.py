"""LM loading: local directories, fingerprints, clear errors."""
from __future__ import annotations

import json

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


def test_default_tokenizer_eos_is_the_gguf_files(tokenizer):
    """answer_ids end with eos, so a wrong eos (transformers 5.17 read <|im_start|>) changes every label."""
    from predictor.lm import default_gguf_path, gguf_special_token_ids

    ids = gguf_special_token_ids(default_gguf_path())
    assert ids["eos"] == 2 and tokenizer.convert_ids_to_tokens(2) == "<|im_end|>"
    assert tokenizer.eos_token_id == ids["eos"] and tokenizer.bos_token_id == ids["bos"]


def test_set_special_tokens_repairs_a_wrong_eos(tokenizer):
    import copy

    from predictor.chains import Chain
    from predictor.layout import encode_chain
    from predictor.lm import set_special_tokens

    tok = copy.deepcopy(tokenizer)
    tok.eos_token = "<|im_start|>"  # what transformers 5.17's GGUF conversion produced
    chain = Chain(question="1+1?", reasoning="1+1=2", answer="2")
    assert encode_chain(tok, chain).answer_ids[-1] == 1
    assert set_special_tokens(tok, {"eos": 2, "bos": 1}) == ["eos: 1 -> 2"]
    assert encode_chain(tok, chain).answer_ids == encode_chain(tokenizer, chain).answer_ids
    assert encode_chain(tok, chain).answer_ids[-1] == 2
    assert set_special_tokens(tok, {"eos": 2}) == []


def test_stale_default_conversion_is_not_current(tmp_path):
    import json

    from predictor.lm import CONVERSION_VERSION, _cache_is_current

    (tmp_path / "config.json").write_text("{}")
    assert not _cache_is_current(tmp_path)  # no source.json
    (tmp_path / "source.json").write_text(json.dumps({"gguf": "x.gguf", "size": 1}))
    assert not _cache_is_current(tmp_path)  # converted before special tokens were checked
    (tmp_path / "source.json").write_text(json.dumps({"gguf": "x.gguf", "size": 1, "version": CONVERSION_VERSION}))
    assert _cache_is_current(tmp_path)


def test_load_warns_when_tokenizer_and_config_eos_differ(tiny_lm, tmp_path):
    import copy

    model = copy.deepcopy(tiny_lm.model)
    model.config.eos_token_id = 0  # the tokenizer's eos is 2
    model.save_pretrained(tmp_path)
    tiny_lm.tokenizer.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match=r"eos_token_id \(2\) differs from the model config's \(0\)"):
        load_lm(str(tmp_path), device="cpu")


def test_embedded_conversion_runs_once_under_a_lock(tmp_path, monkeypatch):
    """Several processes (here threads, each with its own lock file handle) on a fresh cache: one converts,
    the others wait for it and use its copy."""
    import threading
    import time

    from predictor import lm as lm_mod

    calls = []

    def fake_convert(gguf, target):
        calls.append(target)
        time.sleep(0.3)
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        (target / "source.json").write_text(json.dumps({"version": lm_mod.CONVERSION_VERSION}))

    monkeypatch.setenv("PREDICTOR_CACHE", str(tmp_path))
    monkeypatch.setattr(lm_mod, "_convert_gguf", fake_convert)
    monkeypatch.setitem(lm_mod.EMBEDDED_LMS, "fake", lm_mod.EmbeddedLM("fake-lm", lambda: tmp_path / "x.gguf", ""))
    out = []
    threads = [threading.Thread(target=lambda: out.append(lm_mod._resolve("fake"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert out == [("fake-lm", str(tmp_path / "models" / "fake-lm"))] * 4
