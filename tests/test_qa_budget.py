"""QA regressions for `label --budget/--shortlist/--proposer` and `GreedyScorer(proposer=...)` (tiny LM)."""
from __future__ import annotations

import json

import pytest

from predictor.chains import as_chain
from predictor.cli import main
from predictor.ranked import read_ranked

from conftest import CHAINS


@pytest.fixture
def chains_file(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CHAINS))
    return path


def _label(chains_file, out, model_dir, *extra):
    return main(["label", "--in", str(chains_file), "--out", str(out), "--model", model_dir, "--threads", "1",
                 *extra])


@pytest.mark.parametrize("first, second", [
    (["--budget", "0.3"], []),  # an approximate file resumed by the exact search
    (["--shortlist", "3", "--proposer", "surprisal"], []),
    ([], ["--budget", "0.3"]),  # an exact file resumed by the approximate search
    ([], ["--shortlist", "3", "--proposer", "surprisal"]),
])
def test_resume_across_exact_and_approximate_is_refused(tmp_path, chains_file, model_dir, first, second, capsys):
    """Defect: the exact search resumed an approximate file (budget or shortlist records lack nothing it
    checked) and appended exact labels to it; the file now holds one setting only."""
    out = tmp_path / "r.jsonl"
    assert _label(chains_file, out, model_dir, "--limit", "1", *first) == 0
    capsys.readouterr()
    assert _label(chains_file, out, model_dir, *second) == 2
    err = capsys.readouterr().err
    assert f"{out}:1: field " in err and ("'budget'" in err or "'shortlist'" in err) and "Traceback" not in err
    recs = read_ranked(out)
    assert [r["id"] for r in recs] == [CHAINS[0]["id"]]  # nothing appended
    # the same setting still resumes
    assert _label(chains_file, out, model_dir, *first) == 0
    assert [r["id"] for r in read_ranked(out)] == [c["id"] for c in CHAINS]


def test_mismatched_proposer_names_label_options(tmp_path, chains_file, model_dir, capsys):
    """Defect: a --proposer (or --shortlist's default) trained for another LM was refused with predict's
    remedies, --predictor universal and --no-check-lm, options label does not have."""
    assert _label(chains_file, tmp_path / "a.jsonl", model_dir, "--budget", "0.3", "--proposer", "smollm2-joint") == 2
    err = capsys.readouterr().err
    assert "--proposer smollm2-joint" in err and "--proposer universal" in err and "--proposer none" in err
    assert "--no-check-lm" not in err and "--predictor" not in err and "Traceback" not in err
    assert _label(chains_file, tmp_path / "b.jsonl", model_dir, "--shortlist", "2") == 2
    err = capsys.readouterr().err
    assert "--shortlist" in err and "--proposer universal" in err and "--proposer none (the K highest" in err
    assert "--no-check-lm" not in err
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "b.jsonl").exists()
    # the documented fallback is unchanged: --budget with no --proposer on an LM without a shipped one
    assert _label(chains_file, tmp_path / "d.jsonl", model_dir, "--budget", "0.3") == 0
    assert all(r["proposer"] is None and r["budget"] == 0.3 for r in read_ranked(tmp_path / "d.jsonl"))


@pytest.mark.parametrize("extra, says", [
    (["--budget", "0.3", "--propose-every", "2"], "--propose-every only applies with --shortlist"),
    (["--propose-every", "2"], "--propose-every only applies with --shortlist"),
    (["--budget", "0.3", "--proposer", ""], "--proposer: empty"),
    (["--proposer", ""], "--proposer: empty"),
])
def test_ignored_options_are_refused(tmp_path, chains_file, model_dir, capsys, extra, says):
    """Defect: --propose-every without --shortlist, and an empty --proposer, were silently ignored."""
    assert _label(chains_file, tmp_path / "o.jsonl", model_dir, *extra) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("out, says", [("IN", "would overwrite the input"),
                                       ("DIR", "is a directory; give a file path")])
def test_bad_out_is_refused_before_loading(tmp_path, chains_file, model_dir, capsys, out, says):
    """Defect: label --out equal to --in crashed with a KeyError traceback (the in-place writer read the
    chains as ranked records: it would have appended labels to the input), and --out DIR with an
    IsADirectoryError traceback; label now checks its paths as predict and prune do."""
    before = chains_file.read_text()
    target = chains_file if out == "IN" else tmp_path
    assert _label(chains_file, target, model_dir, "--budget", "0.3") == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and "Loading weights" not in err
    assert chains_file.read_text() == before


def test_propose_every_default_and_setting_recorded(tmp_path, chains_file, model_dir):
    out = tmp_path / "s.jsonl"
    assert _label(chains_file, out, model_dir, "--shortlist", "2", "--proposer", "surprisal", "--limit", "1") == 0
    assert [r["propose_every"] for r in read_ranked(out)] == [4]
    assert _label(chains_file, out, model_dir, "--shortlist", "2", "--proposer", "surprisal",
                  "--propose-every", "2") == 2  # another schedule: not mixed


def test_greedy_scorer_proposer_by_name(tiny_lm):
    """Defect: GreedyScorer(proposer="surprisal") (e.g. RankPredictor.load("greedy", budget=F,
    proposer="surprisal")) crashed at score time with AttributeError; a name now loads with the chain's
    LM, "none" runs the lazy search (nothing attached), and other objects are refused up front."""
    from predictor import RankPredictor
    from predictor.greedy.approximate import approximate_greedy_layout, predictor_proposer
    from predictor.layout import encode_chain
    from predictor.scorers.greedy_oracle import GreedyScorer

    chain = CHAINS[1]
    lay = encode_chain(tiny_lm.tokenizer, as_chain(chain), tiny_lm.max_length)
    by_name = RankPredictor.load("greedy", lm=tiny_lm, budget=0.3, proposer="surprisal").predict_ranks(chain)
    want = approximate_greedy_layout(tiny_lm, lay, budget=0.3, proposer=predictor_proposer(
        RankPredictor.load("surprisal", lm=tiny_lm), as_chain(chain))).ranks
    assert list(by_name) == list(want)
    lazy = RankPredictor.load("greedy", lm=tiny_lm, budget=0.3, proposer="none")
    assert lazy.scorer.proposer is None and not lazy.scorer.wants_proposer
    assert list(lazy.predict_ranks(chain)) == list(approximate_greedy_layout(tiny_lm, lay, budget=0.3).ranks)
    with pytest.raises(TypeError, match="proposer"):
        GreedyScorer(budget=0.3, proposer=42)
    with pytest.raises(ValueError, match="proposer"):
        GreedyScorer(budget=0.3, proposer=" ")

