"""select-prune: batched objectives equal the reference, the grid is scored and selected on validation only."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import write_ranked
from predictor.evaluation.fidelity import both_objectives, chain_fidelity
from predictor.evaluation.prune_selection import (RATIOS, batched_objectives, config_name, select_prune,
                                                  write_defaults)
from predictor.rank_predictor import RankPredictor
from predictor.ranked import read_ranked

CHAINS = [{"id": f"c{i}", "question": f"Tom has {i} apples and buys {i + 2} more. How many?",
           "reasoning": f"Tom starts with {i} apples. He buys {i + 2} more, so {i} + {i + 2} = {2 * i + 2} apples.",
           "answer": str(2 * i + 2)} for i in range(6)]


@pytest.fixture(scope="module")
def setup(tiny_lm, tmp_path_factory):
    path = write_ranked(tmp_path_factory.mktemp("sp") / "ranked.jsonl", CHAINS, tiny_lm)
    return RankPredictor.load("surprisal", lm=tiny_lm), read_ranked(path)


def test_batched_objectives_equal_the_plain_forward(setup, tiny_lm):
    _, recs = setup
    rec = recs[0]
    rid = rec["reasoning_ids"]
    sets = [rid[:5], rid[2:7], rid[-5:]]
    got = batched_objectives(tiny_lm.model, rec["prompt_ids"], sets, rec["answer_ids"])
    for g, s in zip(got, sets):
        assert g == pytest.approx(both_objectives(tiny_lm.model, rec["prompt_ids"], s, rec["answer_ids"]), rel=1e-5)


def test_grid_selected_on_validation_then_test_scored_and_resumed(setup, tiny_lm, tmp_path):
    rp, recs = setup
    split = {"val": ["c0", "c1", "c2"], "test": ["c3", "c4"], "train": ["c5"]}
    configs = [(0.0, 0.0), (2.0, 0.0), (0.0, 1.0), (1.0, 0.5)]
    summary = select_prune(rp, recs, split, tmp_path, configs, test=True, draws=2)
    val = summary["splits"]["val"]["joint"]
    assert summary["selected"] == max((config_name(*c) for c in configs), key=lambda m: val[m]["mean"])
    assert summary["splits"]["val"]["n_chains"] == 3 and summary["splits"]["test"]["n_chains"] == 2
    rows = [json.loads(line) for line in (tmp_path / "objectives.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["c0", "c1", "c2", "c3", "c4"]  # train chains are never scored
    test_names = set(rows[-1]["obj"]) - {"greedy", "random", "random0", "random1"}
    assert test_names == {config_name(0, 0), config_name(0, 1), summary["selected"]}
    # plain selection's objectives are what the evaluation report's fidelity computes for the same ranks
    rec = recs[0]
    ranks = np.asarray(rp.predict_ranks({k: rec[k] for k in ("question", "reasoning", "answer")}))
    ref = chain_fidelity(tiny_lm.model, rec, {"p": ranks}, RATIOS)
    assert rows[0]["obj"][config_name(0, 0)]["joint"] == pytest.approx(ref["p"]["joint"], rel=1e-5)
    assert rows[0]["obj"]["greedy"]["joint"] == pytest.approx(ref["greedy"]["joint"], rel=1e-5)
    # a rerun resumes: nothing recomputed, the same selection
    again = select_prune(rp, recs, split, tmp_path, configs, test=True, draws=2)
    assert len((tmp_path / "objectives.jsonl").read_text().splitlines()) == 5
    assert again["selected"] == summary["selected"]
    # a run killed mid-line leaves a cut last line: the rerun cuts it off and resumes
    whole = (tmp_path / "objectives.jsonl").read_text()
    (tmp_path / "objectives.jsonl").write_text(whole + '{"split": "val", "id": "c5", "obj": {"gr')
    select_prune(rp, recs, split, tmp_path, configs, test=True, draws=2)
    assert (tmp_path / "objectives.jsonl").read_text() == whole
    # --write stores the choice where prune reads it
    meta = tmp_path / "pred"
    meta.mkdir()
    (meta / "predictor.json").write_text(json.dumps({"regressor": "x"}))
    write_defaults(meta, summary)
    stored = json.loads((meta / "predictor.json").read_text())
    assert (stored["prune"]["gap_cost"], stored["prune"]["position_weight"]) == tuple(summary["selected_config"])
    assert stored["regressor"] == "x"


def test_no_validation_chain_in_the_data_is_an_error(setup, tmp_path):
    rp, recs = setup
    with pytest.raises(ValueError, match="validation chains"):
        select_prune(rp, recs, {"val": ["nope"], "test": []}, tmp_path)


def test_cli_refuses_bad_grids(capsys):
    from predictor.cli import main

    with pytest.raises(SystemExit):
        main(["select-prune", "--gap-costs", "1,x"])
    assert main(["select-prune", "--position-weights", "0,2"]) == 2
    assert "position_weight" in capsys.readouterr().err
