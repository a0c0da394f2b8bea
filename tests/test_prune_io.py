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
