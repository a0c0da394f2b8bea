"""Observation statistics against brute force from `output_attentions` on a tiny random Llama."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from predictor.layout import encode_chain
from predictor.chains import as_chain
from predictor.observe import ATTENTION_STATS, DEFAULT_PROBE, observe


def _brute(lm, chain):
    lay = encode_chain(lm.tokenizer, as_chain(chain))
    probe = list(lm.tokenizer(DEFAULT_PROBE, add_special_tokens=False)["input_ids"])
    ids = lay.sequence() + probe
    with torch.no_grad():
        lm.model.set_attn_implementation("eager")
        out = lm.model(input_ids=torch.tensor([ids]), output_attentions=True)
        lm.model.set_attn_implementation("sdpa")
    p, n, T = len(lay.prompt_ids), lay.n, lay.total
    res = {k: [] for k in ATTENTION_STATS}
    for w in out.attentions:
        w = w[0].numpy()
        H = w.shape[0]
        s = {k: np.zeros((H, n)) for k in ATTENTION_STATS}
        for h in range(H):
            for i in range(n):
                k = p + i
                s["answer_mean"][h, i] = w[h, p + n:T, k].mean()
                later = [w[h, p + q, k] for q in range(i + 1, n)]
                s["later_mean"][h, i] = np.mean(later) if later else 0.0
                s["later_max"][h, i] = np.max(later) if later else 0.0
                s["last"][h, i] = w[h, T - 1, k]
                s["probe_mean"][h, i] = w[h, T:, k].mean()
                s["received_sum"][h, i] = w[h, k:T, k].sum()
                s["window_mean"][h, i] = w[h, T - 8:T, k].mean()
        for key in ATTENTION_STATS:
            res[key].append(s[key])
    logits = out.logits[0, p - 1:p + n - 1].double()
    lp = torch.log_softmax(logits, -1)
    tok = torch.tensor(lay.reasoning_ids)
    return {k: np.stack(v) for k, v in res.items()}, lp.gather(1, tok[:, None])[:, 0].numpy(), lp


def test_attention_stats_match_brute_force(tiny_lm, chains):
    for chain in chains:
        obs = observe(tiny_lm, chain)
        ref, logprob, lp = _brute(tiny_lm, chain)
        for k in ATTENTION_STATS:
            assert obs.attn[k].shape == (tiny_lm.num_layers, tiny_lm.num_heads, obs.n)
            np.testing.assert_allclose(obs.attn[k], ref[k], atol=1e-5, err_msg=k)
            assert np.isfinite(obs.attn[k]).all()
        np.testing.assert_allclose(obs.logprob, logprob, atol=1e-5)
        ent = -(lp.exp() * lp).sum(-1).numpy()
        np.testing.assert_allclose(obs.entropy, ent, atol=1e-4)
        assert obs.token_rank.min() >= 1


def test_observe_restores_attention_implementation(tiny_lm, chains):
    observe(tiny_lm, chains[0])
    assert tiny_lm.model.config._attn_implementation == "sdpa"


def test_probe_does_not_change_reasoning_rows(tiny_lm, chains):
    """Causality: statistics from the scored sequence are the same with and without the probe."""
    a = observe(tiny_lm, chains[1])
    b = observe(tiny_lm, chains[1], probe=None)
    for k in ATTENTION_STATS:
        if k != "probe_mean":
            np.testing.assert_allclose(a.attn[k], b.attn[k], atol=1e-6)
    np.testing.assert_allclose(a.logprob, b.logprob, atol=1e-6)
    assert (b.attn["probe_mean"] == 0).all()


def test_skip_and_next_logprobs_give_the_search_local_gains(tiny_lm, chains):
    """The `local` feature group's gain, from one observe forward (also of a pruned state, kept=...),
    equals the exact greedy search's local part (`greedy.candidates.local_gains`) of the same state."""
    from predictor.features import FeatureSpec, features_from_observation
    from predictor.greedy.candidates import local_gains

    for chain, kept in ((chains[0], None), (chains[1], [0, 2, 3, 5, 6])):
        obs = observe(tiny_lm, chain, kept=kept)
        lay = obs.layout
        seq = lay.reasoning_ids + lay.answer_ids
        with torch.no_grad():
            logits = tiny_lm.model(input_ids=torch.tensor([lay.sequence()])).logits[0].double()
        lp = torch.log_softmax(logits, -1)
        p, m = len(lay.prompt_ids), lay.n
        tok_lp = lp[p - 1:p - 1 + len(seq)].gather(1, torch.tensor(seq)[:, None])[:, 0]
        rows = lp[p - 1:p + m]  # rows[j]: after prompt + seq[:j]
        want = local_gains(seq, m, tok_lp, rows, joint=True)
        table = features_from_observation(obs, FeatureSpec(groups=("local",)))
        got = table.values[:, table.names.index("local.gain")]
        np.testing.assert_allclose(got, want, atol=2e-4)
        assert obs.next_logprob[:-1] == pytest.approx(obs.logprob[1:])  # next = the following token's own
        rank = table.values[:, table.names.index("local.gain_rank")]
        assert int(np.argmin(rank)) == int(np.argmax(want))  # the highest gain is ranked first
