"""The per-candidate packed attention against the 4D-mask path it replaces (tiny GQA Llama, float64)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from predictor.chains import as_chain
from predictor.greedy.suffix_reuse import SuffixReuseScorer
from predictor.layout import encode_chain


def _walk(lm, lay, packed: bool, chunk_keys: int, steps: int = 4, bound: bool = False):
    """Scores and stores along the first greedy steps, with the packed attention on or off."""
    sc = SuffixReuseScorer(lm, lay, "joint", batch_tokens=24, bound=bound, chunk_keys=chunk_keys)
    sc.packed_attention = packed
    kept, out = list(range(lay.n)), []
    for _ in range(steps):
        s = sc.candidates(kept)
        sf = sc.suffixes
        out.append((s.copy(), [(k.clone(), v.clone()) for k, v in sf.kv], sf.h.clone(), sf.lp.clone(), list(sf.done)))
        j = int(np.argsort(-s, kind="stable")[0])
        sc.advance(j)
        kept = kept[:j] + kept[j + 1:]
    return out, sc


@pytest.mark.parametrize("chunk_keys", [1, 7, 10_000])
@pytest.mark.parametrize("bound", [False, True])
def test_packed_attention_equals_the_masked_path(tiny_lm, chains, chunk_keys, bound):
    """Same scores, stored keys/values, hidden states and log-probs as the 4D-mask path, for chunks of one
    candidate, of a few, and of the whole block, with suffix reuse and with the bound's partial waves."""
    lay = encode_chain(tiny_lm.tokenizer, as_chain(chains[1]))
    ref, _ = _walk(tiny_lm, lay, False, chunk_keys, bound=bound)
    got, sc = _walk(tiny_lm, lay, True, chunk_keys, bound=bound)
    assert sc.packed_attention
    for (s0, kv0, h0, lp0, d0), (s1, kv1, h1, lp1, d1) in zip(ref, got):
        assert d0 == d1
        np.testing.assert_allclose(s1, s0, rtol=0, atol=1e-10)
        # slots past `done` hold nothing; compare the scored ones only
        idx = torch.tensor([o + t for o, n in zip(_offsets(d0, lay, len(s0)), d0) for t in range(n)], dtype=torch.long)
        torch.testing.assert_close(h1[idx], h0[idx], rtol=0, atol=1e-10)
        torch.testing.assert_close(lp1[idx], lp0[idx], rtol=0, atol=1e-10)
        for (k0, v0), (k1, v1) in zip(kv0, kv1):
            torch.testing.assert_close(k1[:, idx], k0[:, idx], rtol=0, atol=1e-10)
            torch.testing.assert_close(v1[:, idx], v0[:, idx], rtol=0, atol=1e-10)


def _offsets(done, lay, m):
    lens = [max(0, m - j - 2 + len(lay.answer_ids)) for j in range(m)]
    return np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(int).tolist()


def test_outside_a_block_the_implementation_is_plain_sdpa(tiny_lm):
    from predictor.greedy.packed_attention import IMPLEMENTATION, packed_attention

    ids = torch.tensor([[5, 9, 200, 31, 7, 44]])
    ref = tiny_lm.model(input_ids=ids).logits
    with packed_attention(tiny_lm.model):
        assert tiny_lm.model.config._attn_implementation == IMPLEMENTATION
        got = tiny_lm.model(input_ids=ids).logits
    assert tiny_lm.model.config._attn_implementation == "sdpa"
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


def test_unsupported_attention_falls_back_to_the_masked_path(tiny_lm, chains, monkeypatch):
    """An attention call with a keyword the packed path does not know (e.g. a soft cap or sinks) makes
    the scorer switch to the 4D-mask path for good, with the same scores."""
    import predictor.greedy.packed_attention as pa

    lay = encode_chain(tiny_lm.tokenizer, as_chain(chains[0]))
    ref, _ = _walk(tiny_lm, lay, False, 64, steps=2)
    monkeypatch.setattr(pa, "_KNOWN_KWARGS", frozenset())  # every keyword the model passes is now unknown
    got, sc = _walk(tiny_lm, lay, True, 64, steps=2)
    assert not sc.packed_attention
    for (s0, *_), (s1, *_) in zip(ref, got):
        np.testing.assert_allclose(s1, s0, rtol=0, atol=1e-10)


def test_soft_capped_models_are_not_supported(tiny_lm, monkeypatch):
    from predictor.greedy.packed_attention import supported

    assert supported(tiny_lm.model)
    monkeypatch.setattr(tiny_lm.model.config, "attn_logit_softcapping", 50.0, raising=False)
    assert not supported(tiny_lm.model)
