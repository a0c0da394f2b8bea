"""benchmarks/cross_lm_table.py on two tiny random LMs of different shapes (the cross-LM table's logic)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_tiny_lm, write_ranked

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cross_lm_table.py"
CHAINS = [{"id": f"k{i}", "question": f"Tom has {i + 2} apples and buys {i + 3} more. How many apples?",
           "reasoning": f"Tom has {i + 2} + {i + 3} = {2 * i + 5} apples" + ", so he has that many" * (i % 3),
           "answer": str(2 * i + 5)} for i in range(9)]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("cross_lm_table", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["cross_lm_table"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("cross_lm_table", None)


def _rows(table):
    return {r["row"]: r for r in table["rows"]}


def test_cross_lm_table_transfers_both_ways_and_reuses_runs(script, tiny_lm, tokenizer, tmp_path, monkeypatch,
                                                            capsys):
    import predictor.lm
    from predictor.metrics import per_chain_spearman
    from predictor.features import FeatureSpec, extract_features_many
    from predictor.predictor_dir import load_predictor
    from predictor.ranked import read_ranked, record_chain
    from predictor.training import TrainConfig, run_training

    lm_b = make_tiny_lm(tokenizer, layers=3, heads=2, kv_heads=1, seed=1)  # another shape: per-head columns differ
    lms = {"lmA": tiny_lm, "lmB": lm_b}
    monkeypatch.setattr(predictor.lm, "load_lm", lambda name=None, **kw: lms[name])
    data_a = write_ranked(tmp_path / "a.jsonl", CHAINS, tiny_lm, seed=0)
    data_b = write_ranked(tmp_path / "b.jsonl", CHAINS[:8], lm_b, seed=1)
    cache = str(tmp_path / "cache")
    # LM A's own predictor, trained on another split (fractions) than the package's: its split must be used
    run_training(TrainConfig(data=str(data_a), model="lmA", out=str(tmp_path / "own-a"), cache=cache,
                             groups=("attention", "logits", "position"), regressors=("lgbm-regression",),
                             states=(0.0,), ensemble=False, fractions=(0.5, 0.1, 0.4), progress=False))
    capsys.readouterr()
    own_split = load_predictor(tmp_path / "own-a" / "predictor")[1]["split"]
    out = tmp_path / "table"
    argv = ["--smol-data", str(data_a), "--smol-model", "lmA",
            "--smol-predictor", str(tmp_path / "own-a" / "predictor"),
            "--gemma-data", str(data_b), "--gemma-model", "lmB", "--names", "A,B",
            "--full-regressors", "lgbm-regression,lgbm-lambdarank", "--out", str(out), "--cache", cache,
            "--n-boot", "200", "--no-progress"]
    # the ETA's count of feature passes == the tables the runs then write to the (fresh) cache
    from predictor.feature_cache import FeatureCache

    args = script.parse_args(argv)
    recs_b = {r["id"]: r for r in read_ranked(data_b)}
    full_cfg = script.run_configs(args)["gemma-full"]
    expect = len(script.pending_passes(full_cfg, recs_b, FeatureCache(cache)))
    assert expect > len(recs_b)  # pruned states of the training chains too
    assert script.main(argv) == 0
    md = capsys.readouterr().out
    full_spec = FeatureSpec(groups=full_cfg.groups)
    assert len(list(FeatureCache(cache).directory(lm_b.fingerprint, full_spec).rglob("*.npz"))) == expect
    assert script.pending_passes(full_cfg, recs_b, FeatureCache(cache)) == set()
    res = json.loads((out / "table.json").read_text())
    assert md == (out / "table.md").read_text() + "\n"
    t_a, t_b, t_zero = res["tables"]

    # A is evaluated on its own predictor's test chains, none of which trained the A-agnostic predictor
    assert t_a["test_ids"] == own_split["test"]
    a_agn = load_predictor(out / "smol-agnostic" / "predictor")[1]
    assert not set(a_agn["split"]["train"]) & set(own_split["test"])
    matched = load_predictor(out / "smol-matched" / "predictor")[1]  # the first len(B train) of A's training chains
    b_agn = load_predictor(out / "gemma-agnostic" / "predictor")[1]
    assert len(matched["split"]["train"]) == len(b_agn["split"]["train"]) < len(a_agn["split"]["train"])
    assert set(matched["split"]["train"]) <= set(a_agn["split"]["train"])
    assert (matched["split"]["val"], matched["split"]["test"]) == (a_agn["split"]["val"], a_agn["split"]["test"])
    assert "A LM-agnostic, size-matched" in _rows(t_a)
    # B's own predictor is the better of its two runs on validation
    val = {k: load_predictor(out / k / "predictor")[1]["metrics"]["val"]["mean"]
           for k in ("gemma-agnostic", "gemma-full")}
    assert res["own_gemma"] == max(val, key=val.get) and t_b["own"] == res["own_gemma"]

    # the transferred A-agnostic predictor on B's test chains == a direct computation without the cache
    reg, meta = load_predictor(out / "smol-agnostic" / "predictor")
    recs = recs_b
    ids = t_b["test_ids"]
    tables = extract_features_many(lm_b, [record_chain(recs[i]) for i in ids],
                                   FeatureSpec.from_dict(meta["feature_spec"]))
    want = per_chain_spearman(reg.predict([t.values for t in tables]), [np.asarray(recs[i]["ranks"]) for i in ids])
    rows_b = _rows(t_b)
    got = rows_b["A LM-agnostic (transfer: no labels of this LM)"]
    np.testing.assert_allclose(got["spearman"]["per_chain"], want, atol=1e-6)
    # paired differences are per chain against the own predictor's values on the same chains
    own_row = next(r for r in t_b["rows"] if r["predictor"] == t_b["own"])
    assert own_row["minus"][t_b["own"]] is None
    np.testing.assert_allclose(got["minus"][t_b["own"]]["per_chain"],
                               np.subtract(got["spearman"]["per_chain"], own_row["spearman"]["per_chain"]))
    assert got["minus"][t_b["own"]]["mean"] == pytest.approx(got["spearman"]["mean"] - own_row["spearman"]["mean"])
    # both directions and the baselines are there; the zero-label table covers every B chain
    assert "B LM-agnostic (transfer: no labels of this LM)" in _rows(t_a)
    assert {"baseline: random", "baseline: position (sign from A train)"} <= set(_rows(t_a))
    assert t_zero["test_ids"] == list(recs) and len(_rows(t_zero)) == 4
    for t in (t_a, t_b, t_zero):
        for r in t["rows"]:
            assert len(r["spearman"]["per_chain"]) == len(t["test_ids"])
            assert -1 <= r["spearman"]["lo"] <= r["spearman"]["mean"] <= r["spearman"]["hi"] <= 1

    # a rerun reuses the three training runs and reproduces the table (random baseline seeded)
    stamps = {k: (out / k / "metrics.json").stat().st_mtime_ns
              for k in ("smol-agnostic", "smol-matched", "gemma-agnostic", "gemma-full")}
    assert script.main(argv) == 0
    assert {k: (out / k / "metrics.json").stat().st_mtime_ns for k in stamps} == stamps
    again = json.loads((out / "table.json").read_text())
    assert again["tables"] == res["tables"]
