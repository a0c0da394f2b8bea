"""`predictor label` (and verify-ranked, check-data) on what a new user gets wrong: an --out of another kind,
an empty or unreadable input, a resumed file of another search, approximate labels checked as exact ones;
and what label says: exact token texts, file:line of skipped chains, the LM tokens spent."""
from __future__ import annotations

import json
import re

import pytest

from predictor.cli import main
from predictor.ranked import read_ranked

SHORT = [  # <= 12 reasoning tokens each: the exact search takes milliseconds on the tiny LM
    {"id": "a", "question": "2+2?", "reasoning": "So 2 + 2 = 4.", "answer": "4"},
    {"id": "b", "question": "3+3?", "reasoning": "3 + 3 = 6 now.", "answer": "6"},
    {"id": "c", "question": "1+1?", "reasoning": "1 + 1 is 2.", "answer": "2"},
]


def _write(path, chains, blank_before: int = 0):
    path.write_text("\n" * blank_before + "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in chains),
                    encoding="utf-8")
    return path


def _label(inp, out, model_dir, *extra):
    return main(["label", "--in", str(inp), "--out", str(out), "--model", model_dir, "--threads", "1", *extra])


@pytest.fixture
def no_lm(monkeypatch):
    """Fail the test if the LM loads (the refusals must come before it)."""
    import predictor.engines.cli_args as cli_args

    monkeypatch.setattr(cli_args, "load_lm_from_args", lambda *a, **k: pytest.fail("the LM was loaded"))


def test_label_tokens_are_exact_for_cjk_and_emoji(tmp_path, model_dir):
    chain = {"id": "zh", "question": "2*5?", "reasoning": "二乘五🙂", "answer": "10"}
    out = tmp_path / "r.jsonl"
    assert _label(_write(tmp_path / "c.jsonl", [chain]), out, model_dir) == 0
    (rec,) = read_ranked(out)
    assert len(rec["tokens"]) == len(rec["reasoning_ids"]) <= 12
    assert not any("\ufffd" in t for t in rec["tokens"]) and "".join(rec["tokens"]) == chain["reasoning"]


def test_label_refuses_an_out_that_is_not_a_ranked_file(tmp_path, model_dir, capsys):
    inp = _write(tmp_path / "c.jsonl", SHORT[:2])
    pruned, predicted = tmp_path / "pruned.jsonl", tmp_path / "ranks.jsonl"
    assert main(["prune", "--in", str(inp), "--out", str(pruned), "--scorer", "position", "--keep", "0.5",
                 "--model", model_dir, "--threads", "1"]) == 0
    assert main(["predict", "--in", str(inp), "--out", str(predicted), "--scorer", "position",
                 "--model", model_dir, "--threads", "1"]) == 0
    chains = _write(tmp_path / "chains.jsonl", SHORT[:1])
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("garbage\n")
    capsys.readouterr()
    for out, what in [(pruned, "looks like a prune output"), (predicted, "looks like a predict output"),
                      (chains, "looks like a chains file"), (garbage, "not a complete record")]:
        before = out.read_bytes()
        assert _label(inp, out, model_dir) == 2
        err = capsys.readouterr().err
        assert f"{out}:1: " in err and what in err and "Traceback" not in err, err
        assert (what == "not a complete record") == ("not a ranked record" not in err)
        assert out.read_bytes() == before  # nothing appended


def test_label_refusals_of_out_come_before_the_lm_loads(tmp_path, model_dir, no_lm, capsys):
    out = tmp_path / "o.jsonl"
    out.write_text(json.dumps(SHORT[0]) + "\n")
    assert _label(_write(tmp_path / "c.jsonl", SHORT[:1]), out, model_dir) == 2
    assert f"{out}:1: not a ranked record (missing 'lm'; looks like a chains file)" in capsys.readouterr().err


def test_label_on_empty_or_unreadable_input_writes_nothing(tmp_path, model_dir, no_lm, capsys):
    out = tmp_path / "sub" / "o.jsonl"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    assert _label(empty, out, model_dir) == 2
    assert f"{empty}: no chain could be read" in capsys.readouterr().err
    utf16 = tmp_path / "u16.jsonl"
    utf16.write_bytes(json.dumps(SHORT[0]).encode("utf-16"))
    array = tmp_path / "arr.json"
    array.write_text(json.dumps(SHORT[:1]) + "\n")
    for bad in (utf16, array):
        assert _label(bad, out, model_dir) == 2
        assert str(bad) in capsys.readouterr().err
    assert not out.exists() and not out.parent.exists()
    # a pre-existing --out is left as it was
    out.parent.mkdir()
    out.write_text("")
    assert _label(empty, out, model_dir) == 2 and out.exists()


def test_label_removes_the_out_it_created_when_it_fails_before_a_record(tmp_path, model_dir, monkeypatch, capsys):
    from predictor.engines.label_job import LabelJob

    def boom(self, chain):
        raise RuntimeError("the search failed")

    monkeypatch.setattr(LabelJob, "record", boom)
    inp, out = _write(tmp_path / "c.jsonl", SHORT[:1]), tmp_path / "o.jsonl"
    assert _label(inp, out, model_dir) == 2
    assert "the search failed" in capsys.readouterr().err and not out.exists()
    out.write_text("")  # one the user made: kept
    assert _label(inp, out, model_dir) == 2 and out.exists()


def test_batch_tokens_zero_is_refused_by_the_parser(tmp_path, model_dir, no_lm, capsys):
    with pytest.raises(SystemExit):
        _label(_write(tmp_path / "c.jsonl", SHORT[:1]), tmp_path / "o.jsonl", model_dir, "--batch-tokens", "0")
    assert "argument --batch-tokens: expected an integer >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_label_refuses_a_stream_out(tmp_path, model_dir, no_lm, capsys, monkeypatch):
    """`--out -` wrote a file named "-" in the working directory while saying "standard output": label's
    output is a file it resumes from, so a stream is refused before anything loads."""
    monkeypatch.chdir(tmp_path)
    assert _label(_write(tmp_path / "c.jsonl", SHORT[:1]), "-", model_dir) == 2
    assert "--out -: label appends ranked records to a file it can resume from" in capsys.readouterr().err
    assert not (tmp_path / "-").exists()


def test_label_skip_messages_name_file_and_line(tmp_path, model_dir, capsys):
    empty = {"id": "e", "question": "q", "reasoning": " ", "answer": "1"}
    inp = _write(tmp_path / "c.jsonl", [SHORT[0], empty, SHORT[1], dict(empty, id="f")], blank_before=2)
    assert _label(inp, tmp_path / "o.jsonl", model_dir) == 0
    err = capsys.readouterr().err
    assert f"e.g. {inp}:4: chain 'e': reasoning is empty" in err and f"e.g. {inp}:6: chain 'f'" in err
    # --shard 1/2 labels the file's chains 1 and 3 (of 0..3): 'e' on line 4, 'f' on line 6
    assert _label(inp, tmp_path / "s.jsonl", model_dir, "--shard", "1/2") == 0
    err = capsys.readouterr().err
    assert f"{inp}:4: chain 'e'" in err and f"{inp}:6: chain 'f'" in err


def test_resume_counts_only_the_input_chains(tmp_path, model_dir, capsys):
    inp, out = _write(tmp_path / "c.jsonl", SHORT), tmp_path / "o.jsonl"
    assert _label(inp, out, model_dir) == 0
    _write(inp, SHORT[:2])  # chain 'c' removed from the input
    capsys.readouterr()
    assert _label(inp, out, model_dir) == 0
    err = capsys.readouterr().err
    assert "2 chains, 2 already done, 0 to do" in err and "; 2 already done;" in err
    assert f"1 record(s) in {out} have no chain in {inp} (kept)" in err
    assert [r["id"] for r in read_ranked(out)] == ["a", "b", "c"]
    # predict / prune, finished before the LM loads: the same counts
    ranks = tmp_path / "ranks.jsonl"
    argv = ["predict", "--in", str(inp), "--out", str(ranks), "--scorer", "position", "--model", model_dir]
    assert main(argv[:2] + [str(_write(tmp_path / "all.jsonl", SHORT))] + argv[3:]) == 0
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "2 already done (nothing left" in err and f"1 record(s) in {ranks} have no chain in {inp} (kept)" in err


def test_resume_refusals_name_the_search_in_label_options(tmp_path, model_dir, capsys, monkeypatch):
    inp = _write(tmp_path / "c.jsonl", SHORT[:1])
    exact, short, lazy = tmp_path / "exact.jsonl", tmp_path / "short.jsonl", tmp_path / "lazy.jsonl"
    assert _label(inp, exact, model_dir) == 0
    assert _label(inp, short, model_dir, "--shortlist", "2", "--proposer", "none") == 0
    assert _label(inp, lazy, model_dir, "--budget", "0.3", "--proposer", "none") == 0
    before = {p: p.read_bytes() for p in (exact, short, lazy)}
    capsys.readouterr()
    assert _label(inp, lazy, model_dir, "--budget", "0.3", "--proposer", "surprisal") == 2  # after the load
    assert (f"{lazy}:1: field 'proposer' is None but this run uses 'surprisal', i.e. {lazy} was written by "
            "--budget 0.3 with --proposer none and this run is --budget 0.3 with proposer 'surprisal'"
            ) in capsys.readouterr().err
    import predictor.engines.cli_args as cli_args

    monkeypatch.setattr(cli_args, "load_lm_from_args", lambda *a, **k: pytest.fail("the LM was loaded"))
    assert _label(inp, exact, model_dir, "--budget", "0.3") == 2
    err = capsys.readouterr().err
    assert f"{exact}:1: field 'budget' is None but this run uses 0.3, i.e. {exact} was written by the exact search " \
           "and this run is --budget 0.3" in err
    assert "use another --out, or delete" in err
    assert _label(inp, short, model_dir, "--shortlist", "2") == 2
    assert (f"{short} was written by --shortlist 2 with --proposer none and this run is --shortlist 2 with the "
            "LM's shipped proposer every 4 steps") in capsys.readouterr().err
    assert _label(inp, exact, model_dir, "--stride", "2") == 2
    assert "written by the exact search and this run is --stride 2" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in before} == before


def test_label_refuses_an_out_labeled_by_another_lm_before_its_layout(tmp_path, model_dir, capsys):
    """A ranked --out of another LM (here a hand-written record of the shipped Gemma's fingerprint, with
    Gemma token ids) is refused for its LM, both LMs named, not for the token layout that differs with it."""
    inp = _write(tmp_path / "c.jsonl", SHORT[:2])
    ids = [818, 3890, 563]
    gemma = {**SHORT[0], "lm": "cc48c957381e", "objective": "joint", "stride": 1, "prompt_ids": [2, 145765],
             "reasoning_ids": ids, "answer_ids": [107, 1], "tokens": ["So", " 2", " +"], "order": [0, 1, 2],
             "ranks": [1, 2, 3], "trajectory": [-3.0, -2.0, -1.0], "full_objective": -4.0, "seconds": 1.0}
    out = tmp_path / "gemma-ranked.jsonl"
    out.write_text(json.dumps(gemma) + "\n")
    capsys.readouterr()
    assert _label(inp, out, model_dir) == 2
    err = capsys.readouterr().err
    assert re.search(rf"{re.escape(str(out))}:1: field 'lm' is 'cc48c957381e' but this run uses '(\w+)', i\.e\. "
                     rf"{re.escape(str(out))} was labeled by another LM, LM 'gemma-3-270m\.Q4_K_M' \(fingerprint "
                     r"cc48c957381e\), and this run's --model is LM 'tiny-llama' \(fingerprint \1\); labels of two "
                     r"LMs cannot be mixed: pass --model gemma3-270m to resume it, use another --out, or delete ", err)
    assert "layout" not in err
    assert out.read_text() == json.dumps(gemma) + "\n"


def test_verify_ranked_and_check_data_recognise_approximate_labels(tmp_path, model_dir, capsys, monkeypatch):
    approx, exact = tmp_path / "approx.jsonl", tmp_path / "exact.jsonl"
    assert _label(_write(tmp_path / "ab.jsonl", SHORT[:2]), approx, model_dir, "--shortlist", "2",
                  "--proposer", "none") == 0
    assert _label(_write(tmp_path / "c.jsonl", SHORT[2:]), exact, model_dir) == 0
    capsys.readouterr()
    assert main(["check-data", str(approx), str(exact)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert "; 2 approximate labels (shortlist 2: 2), not the exact greedy order" in text[0]
    assert "approximate" not in text[1]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(approx.read_text() + exact.read_text())
    assert main(["verify-ranked", str(mixed), "--model", model_dir, "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert "skipped 2 approximate label(s) (shortlist 2: 2; e.g. 'a')" in captured.err
    assert "1/1 identical orders" in captured.out
    import predictor.commands.verify_ranked as verify_ranked

    monkeypatch.setattr(verify_ranked, "load_lm_from_args", lambda *a, **k: pytest.fail("the LM was loaded"))
    for argv in ([str(approx)], [str(mixed), "--ids", "a,b"]):
        assert main(["verify-ranked", *argv, "--model", model_dir]) == 2
        assert "no exact record is left to verify" in capsys.readouterr().err


def test_label_reports_the_lm_tokens_spent(tmp_path, model_dir, capsys):
    from predictor.greedy.approximate import exact_cost_estimate

    out = tmp_path / "o.jsonl"
    assert _label(_write(tmp_path / "c.jsonl", SHORT[:2]), out, model_dir, "--budget", "0.3", "--proposer", "none") == 0
    err = capsys.readouterr().err
    recs = read_ranked(out)
    spent = sum(r["lm_tokens"] for r in recs)
    estimate = sum(exact_cost_estimate(len(r["reasoning_ids"]), len(r["answer_ids"])) for r in recs)
    m = re.search(r"label: the searches ran ([\d,]+) LM tokens on 2 chain\(s\): ([\d.]+) x the exact search's "
                  r"estimate for them \(([\d,]+),", err)
    assert m, err
    assert int(m[1].replace(",", "")) == spent and float(m[2]) == pytest.approx(spent / estimate, abs=0.01)
    assert int(m[3].replace(",", "")) == round(estimate)
    assert _label(tmp_path / "c.jsonl", tmp_path / "x.jsonl", model_dir) == 0  # exact: the tokens, no share
    err = capsys.readouterr().err
    assert "the searches ran" in err and "estimate" not in err


def test_label_help_says_upkeep_and_created_directories(capsys):
    with pytest.raises(SystemExit):
        main(["label", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "fixed upkeep" in text and "can exceed F" in text
    assert "missing directories are created" in text
