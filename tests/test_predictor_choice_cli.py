"""The choice of predictor on the command line: --predictor's help, the cost note of a predictor that runs
extra LM passes (the `loo` group), the contiguity settings `prune` records, and what `predict` copies from a
ranked input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from predictor.cli import build_parser, main

from conftest import CHAINS, make_predictor, write_ranked

NOTE = "scores every single deletion exactly"


def read(p):
    return [json.loads(line) for line in p.read_text().splitlines()]


@pytest.fixture(scope="module")
def saved_lm(model_dir):
    """The tiny LM as the CLI loads it from `--model DIR` (its fingerprint is the one predictors store)."""
    from predictor.lm import load_lm

    return load_lm(model_dir, device="cpu")


@pytest.fixture(scope="module")
def loo_dir(saved_lm, tmp_path_factory):
    return make_predictor(saved_lm, tmp_path_factory.mktemp("p") / "loo-pred", ("logits", "position", "loo"))


@pytest.fixture(scope="module")
def one_pass_dir(saved_lm, tmp_path_factory):
    return make_predictor(saved_lm, tmp_path_factory.mktemp("p") / "one-pass", ("logits", "position"),
                          prune={"gap_cost": 4.0, "position_weight": 0.25})


@pytest.fixture
def chains_file(tmp_path):
    p = tmp_path / "chains.jsonl"
    p.write_text("".join(json.dumps(c) + "\n" for c in CHAINS))
    return p


def test_predictor_help_lists_the_shipped_predictors_and_the_costlier_tier():
    from predictor.predictor_dir import shipped_predictors

    sub = build_parser()._subparsers._group_actions[0].choices
    for command in ("predict", "prune", "show"):
        text = " ".join(sub[command].format_help().split())
        for name in shipped_predictors():
            assert name in text, (command, name)
        assert "smollm2-joint-loo adds greedy's exact first step as features: n extra candidate scorings" in text
        assert "'learned' is an older name of smollm2-joint" in text
    assert "smollm2-joint-loo" in " ".join(sub["predict"].description.split()[:40])  # "one forward pass" qualified
    assert "--protect numbers, so that no number loses a digit" in " ".join(sub["prune"].format_help().split())


def test_load_docstring_names_every_shipped_predictor():
    from predictor.predictor_dir import shipped_predictors
    from predictor.rank_predictor import RankPredictor

    for name in shipped_predictors():
        assert f'"{name}"' in RankPredictor.load.__doc__
    assert "search group" in RankPredictor.__doc__


def test_extra_pass_note_only_for_predictors_with_a_search_group(saved_lm, loo_dir, one_pass_dir):
    from predictor.rank_predictor import RankPredictor

    rp = RankPredictor.load(loo_dir, lm=saved_lm)
    assert rp.scorer.extra_forward_passes(100) == 100
    note = rp.extra_pass_note(100)
    assert "'loo-pred' (loo features)" in note and NOTE in note
    assert "100 tokens, ~5,050 LM tokens, roughly 18 s on one CPU thread" in note
    assert "longest" not in rp.extra_pass_note()
    assert RankPredictor.load(one_pass_dir, lm=saved_lm).extra_pass_note(100) is None
    assert RankPredictor.load("surprisal", lm=saved_lm).extra_pass_note(100) is None


def test_predict_and_show_say_the_cost_of_a_loo_predictor_once(saved_lm, loo_dir, one_pass_dir, chains_file,
                                                             model_dir, tmp_path, capsys):
    from predictor.chains import as_chain
    from predictor.layout import encode_chain

    longest = max(encode_chain(saved_lm.tokenizer, as_chain(c), saved_lm.max_length).n for c in CHAINS)
    run = ["predict", "--in", str(chains_file), "--model", model_dir, "--threads", "1"]
    assert main([*run, "--out", str(tmp_path / "a.jsonl"), "--predictor", str(loo_dir)]) == 0
    err = capsys.readouterr().err
    assert err.count(NOTE) == 1 and "note: predictor 'loo-pred'" in err
    assert f"the longest chain here: {longest} tokens" in err
    assert main([*run, "--out", str(tmp_path / "a.jsonl"), "--predictor", str(loo_dir)]) == 0  # all done: no note
    assert NOTE not in capsys.readouterr().err
    assert main([*run, "--out", str(tmp_path / "b.jsonl"), "--predictor", str(one_pass_dir)]) == 0
    assert main([*run, "--out", str(tmp_path / "c.jsonl"), "--scorer", "surprisal"]) == 0
    assert NOTE not in capsys.readouterr().err
    show = ["show", "--in", str(chains_file), "--out", str(tmp_path / "s.html"), "--model", model_dir]
    assert main([*show, "--predictor", str(loo_dir)]) == 0
    n = encode_chain(saved_lm.tokenizer, as_chain(CHAINS[0]), saved_lm.max_length).n
    assert f"the longest chain here: {n} tokens" in capsys.readouterr().err
    assert main([*show, "--predictor", str(one_pass_dir)]) == 0
    assert NOTE not in capsys.readouterr().err


def test_prune_records_the_contiguity_settings_it_used(one_pass_dir, chains_file, model_dir, tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    run = ["prune", "--in", str(chains_file), "--out", str(out), "--keep", "0.5", "--predictor", str(one_pass_dir),
           "--model", model_dir, "--threads", "1"]
    assert main([*run, "--limit", "1"]) == 0
    rec = read(out)[0]
    assert (rec["gap_cost"], rec["position_weight"]) == (4.0, 0.25)  # the predictor's stored defaults
    assert (rec["settings"]["gap_cost"], rec["settings"]["position_weight"]) == (4.0, 0.25)
    assert main([*run, "--gap-cost", "4", "--position-weight", "0.25"]) == 0  # the same values: resumed
    assert [r["settings"]["gap_cost"] for r in read(out)] == [4.0, 4.0]
    capsys.readouterr()
    before = out.read_text()
    assert main([*run, "--gap-cost", "2"]) == 2
    err = capsys.readouterr().err
    assert f"{out}:1: field 'settings.gap_cost' is 4.0 but this run uses 2.0" in err
    assert "pass --gap-cost 4 to resume it" in err and out.read_text() == before


def test_prune_resumes_a_file_written_before_settings_held_the_values_used(one_pass_dir, chains_file, model_dir,
                                                                         tmp_path, capsys):
    """Older prune records hold null for a contiguity option not given (the values used only at top level): a
    resumed run accepts them and appends records of the same form."""
    out = tmp_path / "p.jsonl"
    run = ["prune", "--in", str(chains_file), "--out", str(out), "--keep", "0.5", "--predictor", str(one_pass_dir),
           "--model", model_dir, "--threads", "1"]
    assert main([*run, "--limit", "1"]) == 0
    old = read(out)[0]
    old["settings"].update(gap_cost=None, position_weight=None)
    out.write_text(json.dumps(old) + "\n")
    assert main(run) == 0
    recs = read(out)
    assert [r["id"] for r in recs] == ["c1", "c2"] and recs[0] == old
    assert recs[1]["settings"]["gap_cost"] is None and recs[1]["gap_cost"] == 4.0
    assert "1 already done" in capsys.readouterr().err
    assert main([*run, "--gap-cost", "1"]) == 2  # another value is still refused
    assert "field 'settings.gap_cost' is None but this run uses 1.0" in capsys.readouterr().err


def test_predict_drops_greedys_own_fields_of_a_ranked_input(tiny_lm, model_dir, tmp_path):
    from predictor.ranked import LABEL_FIELDS

    ranked = write_ranked(tmp_path / "ranked.jsonl", [dict(c, level=3, qid="q7") for c in CHAINS], tiny_lm)
    lines = [json.loads(x) for x in ranked.read_text().splitlines()]
    extra = {"lm_tokens": 99, "prompt_format": "chat", "budget": 0.3, "proposer": None}
    ranked.write_text("".join(json.dumps({**r, **extra}) + "\n" for r in lines))
    plain = tmp_path / "chains.jsonl"  # not a ranked record: its fields all pass through
    plain.write_text(json.dumps(dict(CHAINS[0], seconds=5, type="t")) + "\n")
    for src, out in ((ranked, tmp_path / "r.jsonl"), (plain, tmp_path / "c.jsonl")):
        assert main(["predict", "--in", str(src), "--out", str(out), "--scorer", "position", "--model", model_dir,
                     "--threads", "1"]) == 0
    for rec, src in zip(read(tmp_path / "r.jsonl"), lines):
        assert rec["level"] == 3 and rec["qid"] == "q7" and rec["scorer"] == "position"
        assert rec["id"] == src["id"] and rec["chain_hash"]
        assert rec["ranks"] == list(range(1, rec["n"] + 1))  # the predicted ranks, not greedy's
        for field in ("trajectory", "seconds", "full_objective", "objective", "stride", "prompt_ids",
                      "reasoning_ids", "answer_ids", "lm_tokens", "prompt_format", "budget", "proposer"):
            assert field in LABEL_FIELDS and field not in rec, field
    rec = read(tmp_path / "c.jsonl")[0]
    assert rec["seconds"] == 5 and rec["type"] == "t"


def test_label_fields_cover_what_label_writes(chains_file, model_dir, tmp_path):
    from predictor.ranked import LABEL_FIELDS

    out = tmp_path / "ranked.jsonl"
    for extra in ([], ["--budget", "0.5", "--proposer", "none"]):
        path = out.with_name(f"r{len(extra)}.jsonl")
        assert main(["label", "--in", str(chains_file), "--out", str(path), "--model", model_dir, "--threads", "1",
                     "--limit", "1", *extra]) == 0
        rec = read(path)[0]
        assert set(rec) - {"id", "question", "reasoning", "answer"} <= set(LABEL_FIELDS)


# --- --no-check-lm with an LM of another shape: refused at load, before any chain ---------------------

def test_no_check_lm_refuses_an_lm_of_another_shape_at_load(saved_lm, tokenizer, tmp_path, chains_file, capsys):
    from conftest import make_tiny_lm
    from predictor.rank_predictor import RankPredictor

    pred = make_predictor(saved_lm, tmp_path / "attn-pred", ("attention", "logits", "position"))
    same_shape = make_tiny_lm(tokenizer, seed=1)  # other weights, same layers x heads: allowed on purpose
    rp = RankPredictor.load(str(pred), lm=same_shape, check_lm=False)
    assert rp.predict_ranks(CHAINS[0]).shape == (rp.num_tokens(CHAINS[0]),)
    deeper = make_tiny_lm(tokenizer, layers=3)
    with pytest.raises(ValueError, match=r"trained on \d+ feature columns.*3 layers x 4 heads"):
        RankPredictor.load(str(pred), lm=deeper, check_lm=False)
    d = tmp_path / "deeper"
    deeper.model.save_pretrained(d)
    deeper.tokenizer.save_pretrained(d)
    out = tmp_path / "o.jsonl"
    assert main(["predict", "--in", str(chains_file), "--out", str(out), "--predictor", str(pred),
                 "--model", str(d), "--no-check-lm"]) == 2
    err = capsys.readouterr().err
    assert "feature columns" in err and "Traceback" not in err and "chains," not in err  # before any chain
    assert not out.exists()


def test_planned_note_reads_the_named_predictor_without_loading_it(loo_dir, one_pass_dir, model_dir, tmp_path):
    """`--engine ray`'s driver never loads the predictor (its workers do): the note comes from predictor.json."""
    from predictor.engines.jobs import PredictJob, PruneJob

    parser = build_parser()

    def job(cls, cmd, *extra):
        args = parser.parse_args([cmd, "--in", "x.jsonl", "--out", str(tmp_path / "o.jsonl"), "--model", model_dir,
                                  *extra])
        return cls(args)

    note = job(PredictJob, "predict", "--predictor", str(loo_dir)).planned_note()
    assert NOTE in note and "'loo-pred' (loo features)" in note and "longest" not in note
    assert job(PredictJob, "predict", "--predictor", str(one_pass_dir)).planned_note() is None
    assert job(PredictJob, "predict", "--scorer", "surprisal").planned_note() is None
    assert job(PruneJob, "prune", "--keep", "0.5", "--predictor", str(loo_dir)).planned_note() == note
    shipped = job(PredictJob, "predict", "--predictor", "smollm2-joint-loo").planned_note()
    assert "'smollm2-joint-loo' (loo features)" in shipped
    assert job(PredictJob, "predict", "--predictor", "smollm2-joint").planned_note() is None
