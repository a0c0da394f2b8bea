"""Issue 29, phase B: prune keeps the reasoning's text (whitespace, keep 1.0, `kept` -> the stored string),
precomputed ranks (one forward pass for several budgets), the protected-fill warning, the formats other
tools write (messages, JSON arrays, field mappings) and pipes through `predict` / `prune`."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from predictor.cli import main
from predictor.rank_predictor import RankPredictor

PADDED = {"id": 7, "question": "Tom has 3 apples and buys 4 more. How many?",
          "reasoning": "\n  Tom has 3 apples.\nHe buys 4 more, so 3 + 4 = 7 apples.  \n\n", "answer": "7"}


@pytest.fixture(scope="module")
def rp(tiny_lm):
    return RankPredictor.load("surprisal", lm=tiny_lm)


class NoForward:
    """A ranker whose forward passes fail: pruning with ranks= must not run one."""

    def __init__(self, lm):
        self.lm = lm

    def predict_ranks(self, *a, **k):
        raise AssertionError("a forward pass ran")

    score_many = predict_ranks


# --- text identity ------------------------------------------------------------------------------

def test_keep_all_returns_the_reasoning_byte_for_byte_and_whitespace_stays(rp):
    full = rp.prune(PADDED, 1.0)
    assert full.text == PADDED["reasoning"] and full.kept == list(range(full.n))
    assert full.spans == [(3, len(PADDED["reasoning"]) - 4)]  # the stripped reasoning, in the stored string
    for ratio in (0.3, 0.6, 0.9):
        res = rp.prune(PADDED, ratio)
        assert res.text.startswith("\n  ") and res.text.endswith("  \n\n")


def test_kept_spans_index_the_stored_reasoning(rp):
    from predictor.token_text import token_pieces
    from predictor.layout import encode_chain
    from predictor.chains import as_chain

    stored = PADDED["reasoning"]
    ids = encode_chain(rp.lm.tokenizer, as_chain(PADDED)).reasoning_ids
    pieces = token_pieces(rp.lm.tokenizer, ids)
    for ratio in (0.2, 0.5, 0.8):
        res = rp.prune(PADDED, ratio)
        kept_text = "".join(pieces[i] for i in res.kept)
        assert "".join(stored[a:b] for a, b in res.spans) == kept_text  # kept tokens -> stored offsets
        pos = 0
        for a, b in res.spans:  # each kept run appears in the pruned text, in order
            pos = res.text.index(stored[a:b], pos) + (b - a)


# --- precomputed ranks --------------------------------------------------------------------------

def test_ranks_given_prune_without_a_forward_pass_and_equal_the_computed_result(rp, chains):
    ranks = rp.predict_ranks(chains + [PADDED])
    blind = RankPredictor(rp.lm, rp.scorer, rp.name)
    nf = NoForward(rp.lm)
    from predictor.pruning import prune_with

    for kw in ({"keep_ratio": 0.3}, {"keep_ratio": 0.7, "protect": "numbers"}, {"keep_tokens": 2},
               {"keep_tokens": 5, "gap_cost": 1.0}, {"keep_ratio": 0.5, "step_aware": True}):
        want = rp.prune(chains + [PADDED], **kw)
        got = prune_with(nf, chains + [PADDED], ranks=ranks, **kw)
        assert [(g.text, g.kept, g.budget, g.spans) for g in got] == [(w.text, w.kept, w.budget, w.spans) for w in want]
        one = prune_with(nf, chains[1], ranks=ranks[1], **kw)
        assert one.kept == want[1].kept
    assert blind.prune(chains[0], 0.5, ranks=ranks[0]).kept == rp.prune(chains[0], 0.5).kept
    with pytest.raises(ValueError, match=r"ranks\[1\] has 3 values for the"):
        prune_with(nf, chains, 0.5, ranks=[ranks[0], [1, 2, 3]])
    with pytest.raises(ValueError, match="threshold needs the scores"):
        prune_with(nf, chains[0], threshold=0.5, ranks=ranks[0])
    with pytest.raises(ValueError, match="one rank array per chain"):
        prune_with(nf, chains, 0.5, ranks=ranks[:1])


# --- protected fill -----------------------------------------------------------------------------

def test_warning_when_protected_tokens_fill_the_budget(rp, chains):
    with pytest.warns(UserWarning, match=r"1 of 1 chain\(s\) spend >= 90% of the budget on protected tokens"):
        res = rp.prune(chains[1], keep_tokens=3, protect="numbers")
    assert res.protected_fill >= 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rp.prune(chains[1], keep_ratio=0.9, protect="numbers")  # room left: no warning
        rp.prune(chains[1], keep_tokens=3, protect="numbers", warn=False)


# --- error messages name the CLI option ---------------------------------------------------------

def test_fingerprint_error_names_the_cli_option(tmp_path, model_dir, chains, capsys):
    inp = tmp_path / "c.jsonl"
    inp.write_text(json.dumps(chains[0]) + "\n")
    assert main(["predict", "--in", str(inp), "--out", str(tmp_path / "o.jsonl"), "--predictor", "smollm2-joint",
                 "--model", model_dir]) == 2
    err = capsys.readouterr().err
    assert "--no-check-lm to override" in err and "--predictor universal" in err and "check_lm=False" not in err
    from predictor.predictor_dir import PredictorMismatchError

    with pytest.raises(PredictorMismatchError, match="check_lm=False to override"):
        RankPredictor.load("smollm2-joint", lm=tiny_lm_of(model_dir))


def tiny_lm_of(model_dir):
    from predictor.lm import load_lm

    return load_lm(model_dir, device="cpu")


# --- the CLI: formats, ids, whitespace, ranks, warnings, pipes ------------------------------------

def cli(kind, inp, out, model_dir, *extra):
    budget = ["--keep", "0.5"] if kind == "prune" and not any(e.startswith("--keep") for e in extra) else []
    scorer = [] if "--ranks" in extra else ["--scorer", "surprisal"]
    return [kind, "--in", str(inp), "--out", str(out), *budget, *scorer, "--model", model_dir, *extra]


def lines(p):
    return [json.loads(x) for x in p.read_text().splitlines()]


MESSAGES = {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Tom has 3 apples and buys 4 more. How many?"},
                         {"role": "assistant", "content": "<think>\nTom has 3 apples. He buys 4 more, so 3 + 4 = 7."
                                                          "\n</think>\n\nThe answer is 7."}], "source": "r1"}


def test_cli_messages_in_and_out_with_the_reasoning_replaced_in_place(tmp_path, model_dir, capsys):
    inp, out = tmp_path / "chat.jsonl", tmp_path / "pruned.jsonl"
    inp.write_text(json.dumps(MESSAGES) + "\n")
    assert main(cli("prune", inp, out, model_dir, "--keep", "0.5")) == 0
    assert capsys.readouterr().err.count("found by --format auto") == 1  # the auto-detected format is said, once
    rec, = lines(out)
    think = rec["messages"][2]["content"]
    assert think.startswith("<think>\n") and think.endswith("\n</think>\n\nThe answer is 7.")
    pruned = think[len("<think>\n"):-len("\n</think>\n\nThe answer is 7.")]
    assert pruned == rec["reasoning"] if "reasoning" in rec else True
    assert rec["messages"][:2] == MESSAGES["messages"][:2] and rec["source"] == "r1"
    assert rec["original_reasoning"] == "Tom has 3 apples. He buys 4 more, so 3 + 4 = 7."
    assert rec["id"] == "chat-1" and len(rec["kept"]) == (rec["n"] + 1) // 2 and len(pruned) < len(rec["original_reasoning"])
    assert "question" not in rec and "answer" not in rec  # the input's format, not a chain record
    # keep 1.0 gives the input record back (plus the prune fields)
    full = tmp_path / "full.jsonl"
    assert main(cli("prune", inp, full, model_dir, "--keep", "1")) == 0
    assert {k: v for k, v in lines(full)[0].items() if k in MESSAGES} == MESSAGES
    # --format chain on a messages file names the format it is
    assert main(cli("prune", inp, tmp_path / "x.jsonl", model_dir, "--format", "chain")) == 2
    assert "this is a messages record" in capsys.readouterr().err


def test_cli_json_array_and_field_mapping(tmp_path, model_dir):
    # TokenSkip's LLaMA-Factory layout: {"instruction", "input", "output": "<think>cot</think>answer"}? no: its
    # own cot/answer fields; here one mapped schema and one JSON array file
    recs = [{"id": 3, "prompt": "Tom has 3 apples and buys 4 more. How many?", "cot": "3 + 4 = 7 apples in total.",
             "output": "7"},
            {"id": 4, "prompt": "A pen costs $2. How much do 5 pens cost?", "cot": "5 * 2 = 10 dollars.", "output": "10"}]
    inp, out = tmp_path / "data.json", tmp_path / "o.jsonl"
    inp.write_text(json.dumps(recs, indent=2))
    assert main(cli("prune", inp, out, model_dir, "--field", "question=prompt,reasoning=cot,answer=output")) == 0
    got = lines(out)
    assert [r["id"] for r in got] == [3, 4]  # integer ids stay integers
    for r, src in zip(got, recs):
        assert r["prompt"] == src["prompt"] and r["output"] == src["output"] and r["original_reasoning"] == src["cot"]
        assert r["cot"] != src["cot"] and "reasoning" not in r
    ranks = tmp_path / "r.jsonl"
    assert main(cli("predict", inp, ranks, model_dir, "--field", "question=prompt,reasoning=cot,answer=output")) == 0
    assert [r["id"] for r in lines(ranks)] == [3, 4]


def test_cli_whitespace_and_keep_one_identity(tmp_path, model_dir):
    inp, out = tmp_path / "c.jsonl", tmp_path / "o.jsonl"
    inp.write_text(json.dumps(PADDED) + "\n")
    assert main(cli("prune", inp, out, model_dir, "--keep", "1")) == 0
    rec, = lines(out)
    assert rec["reasoning"] == PADDED["reasoning"] and rec["id"] == 7
    assert rec["kept_spans"] == [[3, len(PADDED["reasoning"]) - 4]]


def test_cli_ranks_file_prunes_without_a_forward_pass(tmp_path, model_dir, chains, monkeypatch, capsys):
    from predictor.engines import record_io

    inp, ranks = tmp_path / "c.jsonl", tmp_path / "ranks.jsonl"
    inp.write_text("".join(json.dumps(c) + "\n" for c in chains + [PADDED]))
    assert main(cli("predict", inp, ranks, model_dir)) == 0
    want = {}
    for keep in ("0.3", "0.7"):
        want[keep] = tmp_path / f"direct-{keep}.jsonl"
        assert main(cli("prune", inp, want[keep], model_dir, "--keep", keep)) == 0
    monkeypatch.setattr(record_io.GivenRanks, "predict_ranks", lambda *a, **k: pytest.fail("a forward pass ran"))
    import predictor.observe as observe

    monkeypatch.setattr(observe, "observe_batch", lambda *a, **k: pytest.fail("a forward pass ran"))
    for keep in ("0.3", "0.7"):
        got = tmp_path / f"ranked-{keep}.jsonl"
        assert main(cli("prune", inp, got, model_dir, "--keep", keep, "--ranks", str(ranks))) == 0
        strip = lambda r: {k: v for k, v in r.items()}  # noqa: E731
        assert [strip(r) for r in lines(got)] == [strip(r) for r in lines(want[keep])]
    capsys.readouterr()
    changed = tmp_path / "changed.jsonl"
    changed.write_text(json.dumps({**chains[0], "reasoning": "Tom has 7 apples."}) + "\n")
    assert main(cli("prune", changed, tmp_path / "x.jsonl", model_dir, "--ranks", str(ranks))) == 2
    assert "changed since its ranks were predicted" in capsys.readouterr().err
    assert main(cli("prune", inp, tmp_path / "y.jsonl", model_dir, "--ranks", str(ranks), "--refresh", "2")) == 2
    assert "holds ranks predicted with --refresh 1; pass --refresh 1" in capsys.readouterr().err


def test_cli_warns_when_protected_tokens_fill_the_budget(tmp_path, model_dir, chains, capsys):
    inp = tmp_path / "c.jsonl"
    inp.write_text(json.dumps(chains[1]) + "\n")
    assert main(cli("prune", inp, tmp_path / "o.jsonl", model_dir, "--keep-tokens", "3", "--protect", "numbers")) == 0
    err = capsys.readouterr().err
    assert "warning: 1 of 1 chain(s) spend >= 90% of the budget on protected tokens ('numbers')" in err
    assert "c2" in err and "UserWarning" not in err


def test_cli_pipes_stream_and_never_hang(tmp_path, model_dir, chains):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    data = "".join(json.dumps(c) + "\n" for c in chains)
    base = [sys.executable, "-m", "predictor", "prune", "--keep", "0.5", "--scorer", "surprisal", "--model", model_dir]
    p = subprocess.run(base + ["--in", "-", "--out", "-"], input=data.encode(), capture_output=True, timeout=240,
                       env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    recs = [json.loads(x) for x in p.stdout.decode().splitlines()]
    assert [r["id"] for r in recs] == ["c1", "c2"] and all(r["reasoning"] for r in recs)
    assert "wrote 2 chain(s) to standard output" in p.stderr.decode() and not (tmp_path / "-").exists()
    inp = tmp_path / "c.jsonl"
    inp.write_text(data)
    # /dev/stdout into a pipe (a FIFO): written as records come, never read for a resume
    p2 = subprocess.run(base + ["--in", str(inp), "--out", "/dev/stdout"], stdin=subprocess.DEVNULL,
                        capture_output=True, timeout=240, env=env, cwd=tmp_path)
    assert p2.returncode == 0, p2.stderr.decode()[-2000:]
    assert [json.loads(x) for x in p2.stdout.decode().splitlines()] == recs
