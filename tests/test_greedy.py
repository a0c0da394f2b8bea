"""The fast greedy labeler against the plain reference implementation, on a tiny random Llama."""
from __future__ import annotations

import numpy as np
import pytest

from predictor.greedy import SearchOptions, greedy_prune
from predictor.greedy.reference import greedy_prune_reference
from predictor.layout import ChainError


@pytest.mark.parametrize("objective", ["joint", "answer"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("batch_tokens", [None, 9])
def test_fast_equals_reference(tiny_lm, chains, objective, stride, batch_tokens):
    for chain in chains:
        fast = greedy_prune(tiny_lm, chain, SearchOptions(objective, stride, batch_tokens=batch_tokens))
        ref = greedy_prune_reference(tiny_lm, chain, objective, stride)
        assert fast.order == ref.order
        np.testing.assert_allclose(fast.trajectory, ref.trajectory, atol=1e-4)
        assert fast.full_objective == pytest.approx(ref.full_objective, abs=1e-4)


def test_ranks_are_a_permutation_consistent_with_order(tiny_lm, chains):
    res = greedy_prune(tiny_lm, chains[1])
    n = len(res.layout.reasoning_ids)
    assert sorted(res.order) == list(range(n))
    assert sorted(res.ranks) == list(range(1, n + 1))
    assert all(res.ranks[i] == k + 1 for k, i in enumerate(res.order))
    assert len(res.trajectory) == n


def test_first_deletion_is_the_best_single_deletion(tiny_lm, chains):
    """Step 1 must pick the deletion with the highest objective among all single deletions."""
    from predictor.layout import encode_chain
    from predictor.objective import sequence_objective

    res = greedy_prune(tiny_lm, chains[0])
    lay = encode_chain(tiny_lm.tokenizer, __import__("predictor.chains", fromlist=["as_chain"]).as_chain(chains[0]))
    p, a = len(lay.prompt_ids), len(lay.answer_ids)
    scores = [sequence_objective(tiny_lm.model, lay.sequence([k for k in range(lay.n) if k != j]), p, a, "joint")
              for j in range(lay.n)]
    assert res.order[0] == int(np.argmax(scores))
    assert res.trajectory[0] == pytest.approx(max(scores), abs=1e-6)


def test_equal_adjacent_tokens_tie_to_lowest_index(tiny_lm):
    """Deleting either of two identical adjacent tokens gives the same sequence: lowest index wins."""
    chain = {"question": "q?", "reasoning": "7 7 7 7 7 7", "answer": "7"}
    res = greedy_prune(tiny_lm, chain)
    ref = greedy_prune_reference(tiny_lm, chain)
    assert res.order == ref.order


def test_bad_inputs(tiny_lm):
    with pytest.raises(ChainError, match="empty"):
        greedy_prune(tiny_lm, {"question": "q", "reasoning": "   \n", "answer": "1"})
    with pytest.raises(ValueError, match="unknown objective"):
        SearchOptions(objective="nope")
    with pytest.raises(ChainError, match="exceed the LM's context"):
        greedy_prune(tiny_lm, {"question": "q", "reasoning": "word " * 600, "answer": "1"})
    with pytest.raises(ValueError, match="stride"):
        SearchOptions(stride=0)


@pytest.mark.parametrize("objective", ["joint", "answer"])
def test_packed_and_row_blocks_of_any_size_match_the_reference(tiny_lm, chains, monkeypatch, objective):
    """Packed blocks with and without suffix reuse and the bound (CPU) and padded rows (CUDA), with one
    candidate per block or many: the same order and trajectory as the reference, the same LM tokens
    whatever the budget, and fewer tokens with each of reuse and the bound."""
    import predictor.greedy.candidates as gc

    ref = greedy_prune_reference(tiny_lm, chains[1], objective=objective)
    tokens = {}
    for pack, reuse, bound in ((True, True, True), (True, True, False), (True, False, True), (True, False, False),
                               (False, False, False)):
        for budget in (1, 64, 100_000):
            fast = greedy_prune(tiny_lm, chains[1], SearchOptions(objective, pack=pack, reuse=reuse, bound=bound,
                                                                   batch_tokens=budget))
            assert fast.order == ref.order, (pack, reuse, bound, budget)
            np.testing.assert_allclose(fast.trajectory, ref.trajectory, atol=1e-8)
            assert tokens.setdefault((pack, reuse, bound), fast.lm_tokens) == fast.lm_tokens
    # the tiny LM's candidates score too close together for the bound to drop any (tests/test_embedded.py
    # shows it on SmolLM2), but with a store the deleted candidate's suffix replaces the next state forward
    assert tokens[True, True, True] <= tokens[True, True, False] < tokens[True, False, False] == tokens[False, False, False]
    assert tokens[True, False, True] < tokens[True, False, False]
    assert greedy_prune(tiny_lm, chains[1], SearchOptions(objective)).lm_tokens == tokens[True, True, True]  # CPU default
    monkeypatch.setattr(gc, "default_kv_tokens", lambda model, device: 1)  # rows: one candidate per block
    fast = greedy_prune(tiny_lm, chains[1], SearchOptions(objective, pack=False))
    assert fast.order == ref.order


@pytest.mark.parametrize("objective", ["joint", "answer"])
def test_suffix_reuse_scores_every_state_like_a_fresh_scorer(tiny_lm, chains, objective):
    """Along a whole search, the reusing scorer's candidate scores equal those of a scorer that sees each
    state fresh. With the bound, every score is an upper bound of the fresh one, equal to it for the
    candidates scored completely; a negative margin drops candidates early (not a valid bound: the walk
    then follows the best complete one), so that partly scored suffixes are reused at the next step.
    A store budget too small to keep anything falls back to fresh, complete scoring each step."""
    from predictor.chains import as_chain
    from predictor.greedy.candidates import CandidateScorer
    from predictor.greedy.suffix_reuse import SuffixReuseScorer
    from predictor.layout import encode_chain

    lay = encode_chain(tiny_lm.tokenizer, as_chain(chains[1]))
    for store, reuse, margin in ((None, True, None), (None, False, 1e-4), (None, True, 1e-4), (None, True, -30.0),
                                 (0, True, 1e-4)):
        bound = margin is not None
        sc = SuffixReuseScorer(tiny_lm, lay, objective, batch_tokens=16, store_bytes=store, reuse=reuse, bound=bound,
                               wave=1, margin=margin or 0.0)
        kept, reused, dropped = list(range(lay.n)), 0, 0
        while kept:
            scores = sc.candidates(kept)
            fresh = CandidateScorer(tiny_lm, lay, objective, 16).candidates(kept)  # padded rows, from scratch
            if sc.suffixes is None or not bound:
                np.testing.assert_allclose(scores, fresh, atol=1e-8)
                j = int(np.argsort(-scores, kind="stable")[0])
            else:
                complete = np.array(sc.suffixes.done) == np.array(sc.suffixes.length)
                np.testing.assert_allclose(scores[complete], fresh[complete], atol=1e-8)
                assert np.all(scores >= fresh - 1e-8)
                dropped += int((~complete).sum())
                j = int(np.flatnonzero(complete)[np.argmax(scores[complete])])
                if margin > 0:  # a valid bound: the argmax is the fresh one and no dropped candidate comes near it
                    assert j == int(np.argsort(-fresh, kind="stable")[0])
                    assert np.all(scores[~complete] < scores[j])
            reused += sc.suffixes is not None and sum(sc.suffixes.done) > 0
            sc.advance(j)
            kept = kept[:j] + kept[j + 1:]
        assert (reused > 0) == (store is None)
        assert (dropped > 0) == (margin is not None and margin < 0)  # the tiny LM's scores are too close to drop any


@pytest.mark.parametrize("answer_len", [1, 2])
def test_suffix_reuse_with_the_shortest_answers(tiny_lm, answer_len):
    """A one-token answer leaves the last candidate no suffix input at all; orders still match."""
    from predictor.greedy import greedy_layout
    from predictor.greedy.reference import greedy_layout_reference
    from predictor.layout import Layout

    lay = Layout([1, 40, 41, 42], [50, 51, 52, 50, 53, 54, 55], [60, 61][:answer_len])
    for budget in (1, 4, None):
        fast = greedy_layout(tiny_lm, lay, SearchOptions(batch_tokens=budget))
        ref = greedy_layout_reference(tiny_lm, lay)
        assert fast.order == ref.order
        np.testing.assert_allclose(fast.trajectory, ref.trajectory, atol=1e-8)


def test_reuse_and_bound_need_the_packed_layout():
    with pytest.raises(ValueError, match="packed"):
        SearchOptions(pack=False, reuse=True)
    with pytest.raises(ValueError, match="packed"):
        SearchOptions(pack=False, bound=True)


@pytest.mark.parametrize("bad", [{"stride": 1.5}, {"stride": True}, {"batch_tokens": 0}, {"max_steps": -1}])
def test_search_options_are_validated(bad):
    with pytest.raises(ValueError):
        SearchOptions(**bad)


def test_loose_fields_still_work_and_do_not_mix_with_options(tiny_lm, chains):
    """The former signature (objective, stride, ... positional or by name) builds the same SearchOptions."""
    want = greedy_prune(tiny_lm, chains[0], SearchOptions("answer", 2, max_steps=2))
    for got in (greedy_prune(tiny_lm, chains[0], "answer", 2, max_steps=2),
                greedy_prune(tiny_lm, chains[0], objective="answer", stride=2, max_steps=2),
                greedy_prune(tiny_lm, chains[0], options=SearchOptions("answer", 2, max_steps=2))):
        assert got.order == want.order and got.lm_tokens == want.lm_tokens
    assert len(want.order) == 4
    with pytest.raises(TypeError, match="not both"):
        greedy_prune(tiny_lm, chains[0], SearchOptions(), stride=2)
    with pytest.raises(ValueError, match="stride"):
        greedy_prune(tiny_lm, chains[0], stride=0)


def test_sliding_window_model_matches_reference(tokenizer):
    """Sliding-window masks count cache slots: blocks must not leave gaps between prefix and suffix."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from predictor.lm import wrap_lm

    torch.manual_seed(0)
    cfg = MistralConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                        sliding_window=24, eos_token_id=tokenizer.eos_token_id, attn_implementation="sdpa")
    model = MistralForCausalLM(cfg).to(torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0 if p.ndim > 1 else 1.0)
    lm = wrap_lm(model, tokenizer, name="tiny-mistral")
    chain = dict(CHAINS_LONG)
    fast = greedy_prune(lm, chain)
    ref = greedy_prune_reference(lm, chain)
    assert fast.order == ref.order
    np.testing.assert_allclose(fast.trajectory, ref.trajectory, atol=1e-4)


CHAINS_LONG = {"question": "A pen costs $2. How much do 5 pens cost?",
               "reasoning": "Each pen costs 2 dollars, so 5 pens cost 5 * 2 = 10 dollars.", "answer": "10"}


def test_tie_equal_neighbours_copies_exact_scores_only():
    """Two equal adjacent tokens tie exactly (the lower index's score wins); a candidate's upper bound
    (bound on, dropped early) is neither copied onto an exact neighbour nor overwritten by one."""
    from predictor.greedy.candidates import tie_equal_neighbours

    seq = [5, 5, 5, 7, 7, 9]
    scores = np.array([-1.0, -1.1, -0.9, -2.0, -2.2, -3.0])
    tie_equal_neighbours(seq, 5, scores)
    np.testing.assert_array_equal(scores, [-1.0, -1.0, -1.0, -2.0, -2.0, -3.0])
    scores = np.array([-1.0, -0.5, -0.9, -2.0, -2.2])
    tie_equal_neighbours(seq, 5, scores, exact=[True, False, True, True, True])
    np.testing.assert_array_equal(scores, [-1.0, -0.5, -0.9, -2.0, -2.0])
