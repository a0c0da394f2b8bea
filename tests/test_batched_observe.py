"""Batched observation equals one chain at a time, and chunked attention statistics equal the eager
reference (tiny Llama; tiny Gemma 3 with sliding-window layers shorter than the sequence)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import predictor.attention_stats as attention_stats
from predictor.attention_stats import ATTENTION_STATS, Span, chunked_stats, reduce_weights
from predictor.batching import plan_batches
from predictor.features import FEATURE_GROUPS, FeatureSpec, extract_features
from predictor.observe import observe, observe_batch

MIXED = [
    {"id": "m1", "question": "Tom has 3 apples and buys 4 more. How many?", "reasoning": "3 + 4 = 7.", "answer": "7"},
    {"id": "m2", "question": "A pen costs $2. How much do 5 pens cost?",
     "reasoning": "Each pen costs 2 dollars, so 5 pens cost 5 * 2 = 10 dollars in total. Check: 10 / 2 = 5 pens.",
     "answer": "10"},
    {"id": "m3", "question": "What is 6 times 7?", "reasoning": "6 * 7 = 42, since 6 * 7 = 6 * 5 + 6 * 2 = 30 + 12.",
     "answer": "42"},
    {"id": "m4", "question": "Sam had 10 cards and gave away 4. How many are left?",
     "reasoning": "He had 10 cards.\nHe gave away 4 cards.\nSo 10 - 4 = 6 cards are left.", "answer": "6"},
]


def _same_obs(a, b, atol=1e-5):
    assert a.layout == b.layout and a.tokens == b.tokens
    for f in ("logprob", "entropy", "token_rank"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), atol=atol, err_msg=f)
    assert set(a.attn) == set(b.attn) and set(a.hidden) == set(b.hidden)
    for k in a.attn:
        np.testing.assert_allclose(a.attn[k], b.attn[k], atol=atol, err_msg=k)
    for l in a.hidden:
        np.testing.assert_allclose(a.hidden[l], b.hidden[l], atol=atol, err_msg=f"hidden {l}")


def test_chunked_stats_equal_reference_on_random_scores():
    torch.manual_seed(0)
    H, Hkv, T, d = 6, 2, 37, 8
    q, k = torch.randn(H, T, d, dtype=torch.float64), torch.randn(Hkv, T, d, dtype=torch.float64)
    kr = k.repeat_interleave(H // Hkv, 0)
    s = (q @ kr.transpose(-1, -2)) * d ** -0.5
    for sliding in (None, 5):
        i = torch.arange(T)
        hide = i[None] > i[:, None]
        if sliding:
            hide |= i[None] <= i[:, None] - sliding
        w = torch.softmax(s.masked_fill(hide, float("-inf")), -1)
        for p, n, scored, window in ((4, 20, 30, 8), (0, 30, 31, 3), (5, 10, 37, 40)):
            ref = reduce_weights(w, p, n, scored, window)
            for chunk in (1, H * T * 3, 1 << 22):  # one query per block, a few, all at once
                got = chunked_stats(q, k, Span(p, n, scored, T, window), sliding_window=sliding, chunk_elements=chunk)
                for key in ATTENTION_STATS:
                    torch.testing.assert_close(got[key], ref[key], atol=1e-12, rtol=0, msg=f"{key} {sliding} {chunk}")
            # the same through an explicit boolean mask (as transformers passes for sliding layers)
            got = chunked_stats(q, k, Span(p, n, scored, T, window), mask=~hide[None], chunk_elements=H * T * 2)
            for key in ATTENTION_STATS:
                torch.testing.assert_close(got[key], ref[key], atol=1e-12, rtol=0)


@pytest.mark.parametrize("chunk", [None, 40])
def test_chunked_observation_equals_eager_reference_llama(tiny_lm, monkeypatch, chunk):
    if chunk:
        monkeypatch.setattr(attention_stats, "CHUNK_ELEMENTS", chunk)  # force many query blocks
    for c in MIXED:
        a = observe(tiny_lm, c, method="chunked", hidden_layers=(1, 2))
        b = observe(tiny_lm, c, method="eager", hidden_layers=(1, 2))
        _same_obs(a, b, atol=1e-6)
    assert tiny_lm.model.config._attn_implementation == "sdpa"


def test_hidden_states_are_the_decoder_outputs(tiny_lm):
    """Hooked layer outputs equal transformers' output_hidden_states (the last one is the normed output)."""
    from predictor.layout import encode_chain
    from predictor.chains import as_chain

    c = MIXED[1]
    obs = observe(tiny_lm, c, attention=False, probe=None, hidden_layers=(1, 2))
    lay = encode_chain(tiny_lm.tokenizer, as_chain(c))
    p, n = len(lay.prompt_ids), lay.n
    with torch.no_grad():
        out = tiny_lm.model.model(input_ids=torch.tensor([lay.sequence()]), output_hidden_states=True)
    for l in (1, 2):
        np.testing.assert_allclose(obs.hidden[l], out.hidden_states[l][0, p:p + n].float().numpy(), atol=1e-6)


def test_chunked_equals_eager_on_gemma3_with_sliding_windows(monkeypatch):
    from test_base_lm_layout import CHAIN, tiny_gemma3, word_tokenizer

    lm = tiny_gemma3(word_tokenizer(True), window=4)  # windows far shorter than the ~30-token sequence
    chains = [CHAIN, {**CHAIN, "id": "g2", "reasoning": "Tom has 3 apples so he buys 4 more ."}]
    monkeypatch.setattr(attention_stats, "CHUNK_ELEMENTS", 50)
    for probe in (None, "The answer is"):
        for c in chains:
            a = observe(lm, c, method="chunked", probe=probe)
            b = observe(lm, c, method="eager", probe=probe)
            _same_obs(a, b, atol=1e-6)
    many = observe_batch(lm, chains, probe="The answer is", budget=10_000)
    for c, m in zip(chains, many):
        _same_obs(m, observe(lm, c, method="eager", probe="The answer is"), atol=1e-6)


@pytest.mark.parametrize("method", ["chunked", "eager"])
def test_batched_observation_equals_one_at_a_time(tiny_lm, method):
    kept = [None, [0, 2, 3, 5, 8, 13], None, list(range(0, 20, 2))]
    one = [observe(tiny_lm, c, kept=k, method=method, hidden_layers=(1, 2)) for c, k in zip(MIXED, kept)]
    for budget in (10_000, 300):  # all in one pass; a few passes
        many = observe_batch(tiny_lm, MIXED, kept=kept, method=method, hidden_layers=(1, 2), budget=budget)
        for a, b in zip(many, one):
            _same_obs(a, b)


def test_batched_features_and_ranks_equal_one_at_a_time(tiny_lm):
    from predictor.rank_predictor import RankPredictor

    spec = FeatureSpec(groups=FEATURE_GROUPS)
    batched = extract_features(tiny_lm, MIXED, spec)
    for c, t in zip(MIXED, batched):
        ref = extract_features(tiny_lm, c, spec)
        assert t.names == ref.names and t.chain_id == c["id"]
        np.testing.assert_allclose(t.values, ref.values, atol=1e-5, rtol=1e-5)
    for scorer in ("attention", "snapkv", "surprisal"):
        rp = RankPredictor.load(scorer, lm=tiny_lm)
        for refresh in (1, 3):
            together = rp.predict_ranks(MIXED, refresh=refresh)
            for c, r in zip(MIXED, together):
                np.testing.assert_array_equal(r, rp.predict_ranks(c, refresh=refresh))


def test_plan_batches_respects_the_budget():
    lengths = [5, 50, 7, 30, 300, 6]
    plan = plan_batches(lengths, 64)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    for b in plan:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 64
    assert [4] in plan  # longer than the budget: alone
    with pytest.raises(ValueError):
        plan_batches(lengths, 0)


def test_passes_without_attention_run_plain_sdpa(tiny_lm, monkeypatch):
    """Scorers and feature specs that need no attention statistics never enter the chunked path."""
    calls = []
    real = attention_stats.chunked_attention
    monkeypatch.setattr(attention_stats, "chunked_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    observe_batch(tiny_lm, MIXED, attention=False, hidden_layers=(1,))
    extract_features(tiny_lm, MIXED[:2], FeatureSpec(groups=("logits", "position", "hidden")))
    assert calls == []
    observe(tiny_lm, MIXED[0])
    assert len(calls) == tiny_lm.num_layers  # one call per layer (and chain) when attention is observed


def test_observed_layers_output_equals_sdpa(tiny_lm):
    """The chunked layers' outputs (they replace sdpa's) leave logits and hidden states as sdpa gives them."""
    for c in MIXED:
        a = observe(tiny_lm, c, hidden_layers=(1, 2))
        b = observe(tiny_lm, c, attention=False, probe=None, hidden_layers=(1, 2))
        np.testing.assert_allclose(a.logprob, b.logprob, atol=1e-9)
        for l in (1, 2):
            np.testing.assert_allclose(a.hidden[l], b.hidden[l], atol=1e-6)
