"""`predictor label`: resumable, crash-safe output; clear errors for bad input."""
from __future__ import annotations

import json

import pytest

from predictor.cli import main
from predictor.ranked import read_ranked

from conftest import CHAINS


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tiny_lm):
    d = tmp_path_factory.mktemp("tiny")
    tiny_lm.model.save_pretrained(d)
    tiny_lm.tokenizer.save_pretrained(d)
    return d


def _chains_file(path, chains):
    path.write_text("".join(json.dumps(c) + "\n" for c in chains))
    return path


def test_label_then_resume_after_interruption(tmp_path, tiny_dir):
    chains = _chains_file(tmp_path / "c.jsonl", CHAINS + [{"id": "c3", "question": "Why?",
                                                            "reasoning": "Because 2 + 2 = 4.", "answer": "4"}])
    full = tmp_path / "full.jsonl"
    assert main(["label", "--in", str(chains), "--out", str(full), "--model", str(tiny_dir), "--threads", "1"]) == 0
    lines = full.read_text().splitlines(keepends=True)
    assert len(lines) == 3
    # simulate a kill: first record complete, second cut mid-line
    part = tmp_path / "part.jsonl"
    part.write_text(lines[0] + lines[1][: len(lines[1]) // 2])
    assert main(["label", "--in", str(chains), "--out", str(part), "--model", str(tiny_dir)]) == 0
    strip = lambda text: [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in text.splitlines()]
    assert strip(part.read_text()) == strip(full.read_text())
    # a second resume is a no-op
    assert main(["label", "--in", str(chains), "--out", str(part), "--model", str(tiny_dir)]) == 0
    assert len(part.read_text().splitlines()) == 3
    recs = read_ranked(part)
    assert [r["id"] for r in recs] == ["c1", "c2", "c3"]


def test_label_skips_unscorable_chains_with_reason(tmp_path, tiny_dir, capsys):
    chains = _chains_file(tmp_path / "c.jsonl", [CHAINS[0], {"id": "e", "question": "q", "reasoning": " ", "answer": "1"}])
    out = tmp_path / "o.jsonl"
    assert main(["label", "--in", str(chains), "--out", str(out), "--model", str(tiny_dir), "--shard", "0/1"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 chain(s): empty reasoning" in err and f"e.g. {chains}:2: chain 'e': reasoning is empty" in err  # as predict
    assert len(out.read_text().splitlines()) == 1


def test_label_bad_input_errors(tmp_path, tiny_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(CHAINS[0]) + "\n{not json\n")
    assert main(["label", "--in", str(bad), "--out", str(tmp_path / "o.jsonl"), "--model", str(tiny_dir)]) == 2
    assert f"{bad}:2: invalid JSON" in capsys.readouterr().err
    missing = tmp_path / "m.jsonl"
    missing.write_text(json.dumps({"id": "x", "question": "q", "answer": "1"}) + "\n")
    assert main(["label", "--in", str(missing), "--out", str(tmp_path / "o.jsonl"), "--model", str(tiny_dir)]) == 2
    assert f"{missing}:1: missing field 'reasoning'" in capsys.readouterr().err
    good = _chains_file(tmp_path / "g.jsonl", CHAINS[:1])
    assert main(["label", "--in", str(good), "--out", str(tmp_path / "o.jsonl"), "--model", str(tmp_path / "nope")]) == 2
    assert "cannot load LM" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["label", "--in", str(good), "--out", str(tmp_path / "o.jsonl"), "--objective", "bogus"])


def test_label_one_file_two_objectives_and_refuses_mixed_settings(tmp_path, tiny_dir, capsys):
    chains = _chains_file(tmp_path / "c.jsonl", CHAINS[:1])
    out = tmp_path / "o.jsonl"
    base = ["label", "--in", str(chains), "--out", str(out), "--model", str(tiny_dir), "--threads", "1"]
    assert main(base) == 0
    assert main(base + ["--objective", "answer"]) == 0  # same id, other objective: labeled, not skipped
    assert sorted(r["objective"] for r in read_ranked(out)) == ["answer", "joint"]
    before = out.read_text()
    assert main(base + ["--stride", "2"]) == 2  # would mix exact and approximate labels
    assert "field 'stride' is 1 but this run uses 2" in capsys.readouterr().err
    assert out.read_text() == before


def test_resume_refuses_a_corrupt_line_in_the_middle(tmp_path):
    from predictor.jsonl_io import ResumableJsonlWriter

    p = tmp_path / "o.jsonl"
    p.write_text('{"id": "a"}\n{broken\n{"id": "b"}\n')
    with pytest.raises(ValueError, match=r"o.jsonl:2: not a complete record"):
        ResumableJsonlWriter(p)
    assert p.read_text() == '{"id": "a"}\n{broken\n{"id": "b"}\n'  # nothing dropped


def test_verify_ranked_reruns_the_search_on_stored_ids(tmp_path, tiny_dir, capsys):
    chains = _chains_file(tmp_path / "c.jsonl", CHAINS)
    out = tmp_path / "r.jsonl"
    assert main(["label", "--in", str(chains), "--out", str(out), "--model", str(tiny_dir), "--threads", "1"]) == 0
    capsys.readouterr()
    assert main(["verify-ranked", str(out), "--model", str(tiny_dir), "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "2/2 identical orders" in text and text.count("same order; layout as today") == 2
    # a record whose order is not the greedy one, stored with another eos token
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    r = recs[1]
    r["order"] = r["order"][1:] + r["order"][:1]
    for step, i in enumerate(r["order"], 1):
        r["ranks"][i] = step
    r["answer_ids"][-1] = 0
    out.write_text("".join(json.dumps(x) + "\n" for x in recs))
    assert main(["verify-ranked", str(out), "--model", str(tiny_dir), "--ids", r["id"]]) == 1
    text = capsys.readouterr().out
    assert "orders part at step 1" in text and "layout differs from today's tokenizer" in text
    assert "0/1 identical orders" in text
    assert main(["verify-ranked", str(out), "--model", str(tiny_dir), "--ids", "nope"]) == 2
    assert "no record with id 'nope'" in capsys.readouterr().err


def test_label_and_merge_refuse_to_mix_layouts(tmp_path, tiny_dir, capsys):
    """Labels made with another eos token (transformers 5.17's GGUF conversion) must not be mixed in."""
    chains = _chains_file(tmp_path / "c.jsonl", CHAINS)
    first = _chains_file(tmp_path / "c1.jsonl", CHAINS[:1])
    out = tmp_path / "o.jsonl"
    assert main(["label", "--in", str(first), "--out", str(out), "--model", str(tiny_dir), "--threads", "1"]) == 0
    other = tmp_path / "other.jsonl"
    rec = json.loads(out.read_text())
    rec["answer_ids"][-1] = 1
    other.write_text(json.dumps(rec) + "\n")
    capsys.readouterr()
    assert main(["label", "--in", str(chains), "--out", str(other), "--model", str(tiny_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{other}:1: field answer_ids (stored ends" in err and "mix two layouts" in err
    assert len(other.read_text().splitlines()) == 1  # nothing appended
    assert main(["label", "--in", str(chains), "--out", str(out), "--model", str(tiny_dir)]) == 0  # same layout
    rec2 = json.loads(out.read_text().splitlines()[1])
    assert rec2["id"] == "c2" and rec2["device"] == "cpu"
    capsys.readouterr()
    merged = tmp_path / "m.jsonl"
    assert main(["merge-ranked", "--in", str(out), str(other), "--order", str(chains), "--out", str(merged)]) == 2
    assert "end their answers with different tokens" in capsys.readouterr().err
    assert not merged.exists()
    assert main(["merge-ranked", "--in", str(out), "--order", str(chains), "--out", str(merged)]) == 0


def test_search_cost_grows_like_n_cubed():
    """Kind 8: the progress bar weighs chains by the search's cost, not by their tokens."""
    from predictor.engines.label_job import search_cost

    assert search_cost(3, 0) == 9 / 2 + 4 / 2 + 1 / 2  # m^2/2 for m = 3, 2, 1
    assert search_cost(2, 5) == (4 / 2 + 2 * 5) + (1 / 2 + 5)
    ratio = search_cost(800, 10) / search_cost(400, 10)
    assert 7.5 < ratio < 8.1  # a chain twice as long costs ~8x, not 2x
    assert search_cost(100, 10, stride=4) < search_cost(100, 10) / 3.5


def test_label_progress_and_max_tokens(tmp_path, tiny_dir, capsys):
    """Kind 8: --max-tokens skips long chains with a reason; progress counts chains and cost."""
    long = {"id": "long", "question": "q?", "reasoning": "one two three four five six seven eight nine ten " * 3,
            "answer": "1"}
    chains = _chains_file(tmp_path / "c.jsonl", [CHAINS[0], long])
    out = tmp_path / "o.jsonl"
    assert main(["label", "--in", str(chains), "--out", str(out), "--model", str(tiny_dir), "--max-tokens", "20"]) == 0
    err = capsys.readouterr().err
    assert "more than --max-tokens 20" in err and "chain 'long'" in err
    assert "1/1 chains" in err and "100%" in err
    assert [r["id"] for r in read_ranked(out)] == ["c1"]
    assert main(["label", "--in", str(chains), "--out", str(out), "--model", str(tiny_dir), "--max-tokens", "0"]) == 2


def test_label_resume_refuses_changed_chain(tmp_path, tiny_dir, capsys):
    """Kind 5: a resumed label run refuses a record whose input chain changed since."""
    chains = _chains_file(tmp_path / "c.jsonl", [CHAINS[0]])
    out = tmp_path / "o.jsonl"
    assert main(["label", "--in", str(chains), "--out", str(out), "--model", str(tiny_dir)]) == 0
    before = out.read_text()
    _chains_file(chains, [{**CHAINS[0], "reasoning": "Tom has 7 apples."}])
    assert main(["label", "--in", str(chains), "--out", str(out), "--model", str(tiny_dir)]) == 2
    assert f"{out}:1: the record of ('c1', 'joint') was written for other content" in capsys.readouterr().err
    assert out.read_text() == before
