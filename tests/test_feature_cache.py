"""Feature cache: hits equal fresh computation, keys separate LM/spec/chain/kept, corrupt files recompute."""
from __future__ import annotations

import json

import numpy as np
import pytest

import predictor.feature_cache as fc
from predictor.feature_cache import FeatureCache
from predictor.features import FeatureSpec, extract_features_many

SPEC = FeatureSpec(groups=("attention", "logits", "position", "lexical"))


@pytest.fixture
def counting(monkeypatch):
    calls = []

    def fake(lm, chains, spec=None, kept=None):
        for c, k in zip(chains, kept or [None] * len(chains)):
            calls.append((c["id"] if isinstance(c, dict) else c.id, k))
        return extract_features_many(lm, chains, spec, kept)

    monkeypatch.setattr(fc, "extract_features_many", fake)
    return calls


def test_miss_then_hit_returns_equal_table(tmp_path, tiny_lm, chains, counting):
    cache = FeatureCache(tmp_path)
    a = cache.features_for(tiny_lm, chains[0], SPEC)
    b = cache.features_for(tiny_lm, chains[0], SPEC)
    assert len(counting) == 1 and (cache.hits, cache.misses) == (1, 1)
    assert a.names == b.names and a.groups == b.groups and b.chain_id == "c1"
    np.testing.assert_array_equal(a.values, b.values)
    d = cache.directory(tiny_lm.fingerprint, SPEC)
    assert d == tmp_path / tiny_lm.fingerprint / SPEC.fingerprint()
    meta = json.loads((d / "names.json").read_text())
    assert meta["names"] == a.names and FeatureSpec.from_dict(meta["spec"]) == SPEC
    files = [p for p in d.rglob("*") if p.is_file()]
    assert sorted(p.suffix for p in files) == [".json", ".npz"]  # no temp files left
    with np.load(files[[p.suffix for p in files].index(".npz")], allow_pickle=False) as z:
        assert z["values"].shape == a.values.shape


def test_keys_separate_spec_lm_text_and_kept(tmp_path, tiny_lm, chains, counting):
    cache = FeatureCache(tmp_path)
    cache.features_for(tiny_lm, chains[0], SPEC)
    cache.features_for(tiny_lm, chains[0], FeatureSpec(groups=("logits",)))  # other spec
    edited = dict(chains[0], reasoning=chains[0]["reasoning"] + " Done.")
    cache.features_for(tiny_lm, edited, SPEC)  # same id, new text
    part = cache.features_for(tiny_lm, chains[0], SPEC, kept=[0, 1, 2])  # partial state
    assert part.n == 3 and len(counting) == 4
    assert cache.get("other-lm-fp", SPEC, chains[0]) is None
    assert cache.get(tiny_lm.fingerprint, FeatureSpec(groups=("logits",), version=2), chains[0]) is None
    assert cache.get(tiny_lm.fingerprint, SPEC, chains[0]).n > 3  # the full chain's entry is untouched
    assert cache.get(tiny_lm.fingerprint, SPEC, chains[0], kept=[0, 1, 2]).n == 3


def test_corrupt_entry_is_recomputed_and_names_are_checked(tmp_path, tiny_lm, chains, counting):
    cache = FeatureCache(tmp_path)
    t = cache.features_for(tiny_lm, chains[1], SPEC)
    path = cache.path(tiny_lm.fingerprint, SPEC, chains[1])
    path.write_bytes(b"not a zip")
    assert FeatureCache(tmp_path).get(tiny_lm.fingerprint, SPEC, chains[1]) is None
    again = FeatureCache(tmp_path).features_for(tiny_lm, chains[1], SPEC)
    np.testing.assert_array_equal(again.values, t.values)
    assert len(counting) == 2
    # a table whose columns disagree with names.json is refused, not silently mixed in
    bad = t.select(["logits"])
    with pytest.raises(RuntimeError, match="names.json"):
        FeatureCache(tmp_path).put(tiny_lm.fingerprint, SPEC, chains[0], bad)


def test_features_for_many_and_default_root(tmp_path, tiny_lm, chains, monkeypatch, counting):
    monkeypatch.setenv("PREDICTOR_CACHE", str(tmp_path))
    cache = FeatureCache()
    assert cache.root == tmp_path / "features"
    tables = cache.features_for_many(tiny_lm, chains, SPEC)
    assert [t.chain_id for t in tables] == ["c1", "c2"] and len(counting) == 2


def _ranked(tok, chain, reasoning_ids=None):
    from predictor.chains import as_chain
    from predictor.layout import encode_chain

    lay = encode_chain(tok, as_chain(chain))
    n = lay.n
    if reasoning_ids == "shifted":  # same length, other tokens: as if labeled with another tokenizer
        reasoning_ids = [t + 1 for t in lay.reasoning_ids]
    return dict(chain, lm="x", objective="joint", stride=1, prompt_ids=lay.prompt_ids,
                reasoning_ids=reasoning_ids or lay.reasoning_ids, answer_ids=lay.answer_ids, tokens=["t"] * n,
                order=list(range(n)), ranks=list(range(1, n + 1)), trajectory=[0.0] * n, full_objective=0.0, seconds=0.0)


def test_featurize_cli_fills_cache_and_checks_ranked_ids(tmp_path, tiny_lm, chains, capsys):
    from predictor.cli import main

    model_dir = tmp_path / "tiny"
    tiny_lm.model.save_pretrained(model_dir)
    tiny_lm.tokenizer.save_pretrained(model_dir)
    ranked = tmp_path / "r.jsonl"
    ranked.write_text("".join(json.dumps(_ranked(tiny_lm.tokenizer, c)) + "\n" for c in chains))
    args = ["featurize", "--in", str(ranked), "--model", str(model_dir), "--cache", str(tmp_path / "cache"),
            "--groups", "attention,logits", "--threads", "1"]
    assert main(args) == 0
    assert "featurized 2 chains, 0 already cached" in capsys.readouterr().err
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 2
    assert main(args) == 0  # resumable: everything is cached now
    assert "featurized 0 chains, 2 already cached" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(_ranked(tiny_lm.tokenizer, chains[0])) + "\n"
                   + json.dumps(_ranked(tiny_lm.tokenizer, chains[1], reasoning_ids="shifted")) + "\n")
    assert main(["featurize", "--in", str(bad), "--model", str(model_dir), "--cache", str(tmp_path / "c2")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: field 'reasoning_ids' differs" in err
    assert main(["featurize", "--in", str(ranked), "--model", str(model_dir), "--groups", "attn"]) == 2
    assert "unknown feature groups" in capsys.readouterr().err


def test_many_computes_only_misses_in_one_call(tmp_path, tiny_lm, chains, counting):
    cache = FeatureCache(tmp_path)
    first = cache.features_for(tiny_lm, chains[0], SPEC)
    tables = cache.features_for_many(tiny_lm, chains, SPEC, kept=[None, [0, 2, 4]])
    assert [c for c, _ in counting] == ["c1", "c2"] and counting[1][1] == [0, 2, 4]
    np.testing.assert_array_equal(tables[0].values, first.values)
    assert tables[1].n == 3 and (cache.hits, cache.misses) == (1, 2)
