"""benchmarks/compare_predictors.py: which chains two predictors can be compared on."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import numpy as np  # noqa: E402
from compare_predictors import length_buckets, pick_chains  # noqa: E402


def _meta(train, val, test, extra=()):
    return {"split": {"train": list(train), "val": list(val), "test": list(test)}, "extra_train_ids": list(extra)}


RECORDS = [{"id": f"c{i}"} for i in range(10)]


def test_test_chains_exclude_what_any_predictor_trained_or_selected_on():
    new = _meta(train=["c0", "c1"], val=["c2", "c3"], test=["c4", "c5", "c6", "c7"])
    old = _meta(train=["c0"], val=["c2"], test=["c4", "c5"], extra=["c6"])  # old trained on c6's variant
    got = [r["id"] for r in pick_chains(RECORDS, [new, old], "test")]
    assert got == ["c4", "c5", "c7"]


def test_val_chains_may_be_anyones_validation_but_nobodys_training():
    new = _meta(train=["c0"], val=["c2", "c3", "c8", "c9"], test=["c4"])
    old = _meta(train=["c8"], val=["c2", "c3"], test=["c4"], extra=["c9"])
    got = [r["id"] for r in pick_chains(RECORDS, [new, old], "val")]
    assert got == ["c2", "c3"]


def test_unseen_is_every_record_no_predictor_used():
    a = _meta(train=["c0"], val=["c1"], test=["c2"])
    b = _meta(train=["c3"], val=["c4"], test=["c5"], extra=["c6"])
    got = [r["id"] for r in pick_chains(RECORDS, [a, b], "unseen")]
    assert got == ["c2", "c5", "c7", "c8", "c9"]


def test_length_buckets_cover_every_chain_once():
    n = np.array([20, 32, 33, 48, 64, 65, 300])
    got = length_buckets(n, [48, 32, 64])
    assert [label for label, _ in got] == ["1-32", "33-48", "49-64", ">64"]
    assert [n[m].tolist() for _, m in got] == [[20, 32], [33, 48], [64], [65, 300]]
    assert np.array_equal(sum(m.astype(int) for _, m in got), np.ones(len(n), dtype=int))


def test_cli_refuses_duplicate_names_bad_edges_and_a_directory_out_before_any_work(tmp_path, capsys):
    import pytest
    from compare_predictors import main

    for argv, msg in ((["--names", "x,x"], "its own name"), (["--by-length", "0,32"], "edges are reasoning-token"),
                      (["--by-length", "a"], "comma-separated integers"), (["--out", str(tmp_path)], "is a directory")):
        with pytest.raises(SystemExit):
            main(["--data", "missing.jsonl", "--predictors", "a", "b", *argv])
        assert msg in capsys.readouterr().err


def test_a_registered_scorer_name_is_a_predictor_that_saw_nothing(tmp_path):
    """--predictors DIR local-gain: the scorer trained and selected on nothing, so it removes no chain;
    a name that is neither a directory nor a scorer is a clear error."""
    import pytest

    from compare_predictors import predictor_metadata
    from predictor.predictor_dir import PredictorLoadError

    assert predictor_metadata("local-gain") == {}
    new = _meta(train=["c0"], val=["c1"], test=["c2", "c3"])
    assert [r["id"] for r in pick_chains(RECORDS, [new, predictor_metadata("surprisal")], "test")] == ["c2", "c3"]
    with pytest.raises(PredictorLoadError, match="neither a predictor directory nor.*local-gain"):
        predictor_metadata(str(tmp_path / "no-such-predictor"))
    assert predictor_metadata("learned")["lm_fingerprint"]  # the shipped predictor, as RankPredictor.load("learned")
    assert predictor_metadata("universal")["lm_agnostic"]
    (tmp_path / "local-gain").mkdir()  # a folder of a scorer's name: the scorer wins, as in RankPredictor.load
    import os
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert predictor_metadata("local-gain") == {}
    finally:
        os.chdir(cwd)
    with pytest.raises(ValueError, match="put a trained predictor first"):
        pick_chains(RECORDS, [predictor_metadata("local-gain"), new], "val")


def test_label_bias_agreement_with_an_approximate_copy_of_exact_equals_agreement_with_exact(tmp_path, capsys,
                                                                                            tiny_lm):
    """benchmarks/label_bias.py: when the approximate method's ranks are the exact ones, each predictor's
    agreement with both is the same number, and two copies of one predictor differ by exactly 0."""
    import json

    import pytest
    from conftest import CHAINS, write_ranked
    from label_bias import main

    ranked = write_ranked(tmp_path / "r.jsonl", CHAINS, tiny_lm)
    recs = [json.loads(line) for line in open(ranked)]
    frontier = tmp_path / "frontier.json"
    frontier.write_text(json.dumps({"chains": {"m": [{"id": r["id"], "ranks": r["ranks"]} for r in recs]}}))
    assert main(["--ranked", str(ranked), "--frontier", str(frontier), "--method", "m",
                 "--predictors", "position", "position"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{len(recs)} chains; m vs exact greedy: +1.000")
    with_exact, with_m = out[1].split("with exact ")[1].split(", with m ")
    assert with_exact == with_m
    assert out[3] == ("paired, second minus first: with exact +0.000 [+0.000, +0.000], "
                      "with m +0.000 [+0.000, +0.000]")
    with pytest.raises(SystemExit):
        main(["--ranked", str(ranked), "--frontier", str(frontier), "--method", "lazy", "--predictors", "a", "b"])
    assert "no method 'lazy'" in capsys.readouterr().err
