"""Attribution patching's deletion-gain estimates (`predictor.greedy.attribution_patching`)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from predictor.chains import as_chain
from predictor.greedy import greedy_layout, make_scorer
from predictor.greedy.approximate import ApproximateOptions, _Sequence, approximate_greedy_layout
from predictor.greedy.attribution_patching import (BACKWARD_FORWARDS, DeletionGainEstimator, attribution_proposer,
                                                   key_removal_effects)
from predictor.layout import encode_chain
from predictor.lm import wrap_lm

from conftest import CHAINS

CHAIN = CHAINS[1]


def _layout(lm, chain=CHAIN):
    return encode_chain(lm.tokenizer, as_chain(chain), lm.max_length)


def test_key_removal_effects_with_qk_fix_is_exact_for_a_linear_readout():
    """J = <G, out>: removing key k from one layer changes J by exactly what the qk-fixed formula says
    (reference: the softmax recomputed without key k, strictly later queries only)."""
    g = torch.Generator().manual_seed(0)
    h, t, s, d = 3, 5, 8, 4
    logits = torch.randn(h, t, s, generator=g, dtype=torch.float64) * 2
    q_pos = torch.arange(s - t, s)
    logits = logits.masked_fill(torch.arange(s)[None, None] > q_pos[None, :, None], -torch.inf)
    probs = torch.softmax(logits, -1)
    v = torch.randn(h, s, d, generator=g, dtype=torch.float64)
    out = probs @ v
    grad = torch.randn(h, t, d, generator=g, dtype=torch.float64)
    keys = slice(2, 6)
    got = key_removal_effects(probs, out, v, grad, keys, qk_fix=True)
    want = []
    for k in range(2, 6):
        lg = logits.clone()
        later = q_pos > k
        lg[:, later, k] = -torch.inf
        want.append(float(((torch.softmax(lg, -1) @ v - out) * grad).sum()))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)
    lin = key_removal_effects(probs, out, v, grad, keys, qk_fix=False)  # first order: smaller where P is large
    assert not np.allclose(lin.numpy(), want)


@pytest.mark.parametrize("objective", ["joint", "answer"])
def test_local_parts_are_the_exact_ones(tiny_lm, objective):
    lay = _layout(tiny_lm)
    est = DeletionGainEstimator(tiny_lm, lay, objective)
    kept = [i for i in range(lay.n) if i % 3]
    with torch.no_grad():
        cur = _Sequence(make_scorer(tiny_lm, lay, objective, reuse=False, bound=False))
        cur.recompute(kept, 0)
        want = cur.local_gains(objective == "joint")
    _, local = est.estimate_parts(kept)
    np.testing.assert_allclose(local, want, atol=1e-9)


def _masked_rests(lm, lay, kept, joint):
    """Exact change of the targets after kept[j] + 1 when every query stops attending to kept[j] (positions
    unchanged): what the estimate linearizes, by a 2D attention mask per candidate."""
    seq = [lay.reasoning_ids[i] for i in kept] + lay.answer_ids
    p, m = len(lay.prompt_ids), len(kept)
    ids = torch.tensor([lay.prompt_ids + seq])
    with torch.no_grad():
        base = torch.log_softmax(lm.model(input_ids=ids).logits[0].double(), -1)
        out = []
        for j in range(m):
            mask = torch.ones_like(ids)
            mask[0, p + j] = 0
            lp = torch.log_softmax(lm.model(input_ids=ids, attention_mask=mask).logits[0].double(), -1)
            first = j + 2 if joint else max(j + 2, m)  # seq index of the first target counted
            tgt = torch.tensor(seq[first:])
            rows = torch.arange(p + first - 1, p + len(seq) - 1)
            out.append(float((lp[rows, tgt] - base[rows, tgt]).sum()))
    return np.array(out)


@pytest.mark.parametrize("objective", ["joint", "answer"])
def test_first_order_rest_matches_masking_the_key_when_attention_is_weak(tokenizer, objective):
    """With every value projection scaled by 1e-4 the network is linear in the attention outputs, so
    AtP* (each layer's attention change exact) must match removing the key from every later query
    (2D mask, positions unchanged) to within a few percent; this checks positions, slices and layers."""
    from conftest import make_tiny_lm

    lm = make_tiny_lm(tokenizer, seed=3)
    model = copy.deepcopy(lm.model)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.v_proj.weight.mul_(1e-4)
    weak = wrap_lm(model, tokenizer, name="tiny-weak-values")
    lay = _layout(weak)
    kept = list(range(0, lay.n, 2)) + list(range(1, lay.n, 4))
    kept.sort()
    want = _masked_rests(weak, lay, kept, objective == "joint")
    gains, local = DeletionGainEstimator(weak, lay, objective, qk_fix=True).estimate_parts(kept)
    rest = gains - local
    assert np.abs(want).max() > 1e-7
    np.testing.assert_allclose(rest, want, rtol=0.05, atol=0.02 * np.abs(want).max())


def test_attribution_proposer_counts_forward_and_backward(tiny_lm):
    lay = _layout(tiny_lm)
    propose = attribution_proposer(tiny_lm, lay)
    kept = list(range(lay.n))
    scores, ran = propose(kept)
    seq_inputs = lay.n + len(lay.answer_ids) - 1
    assert ran == len(lay.prompt_ids) + (1 + BACKWARD_FORWARDS) * seq_inputs
    assert propose(kept[1:])[1] == (1 + BACKWARD_FORWARDS) * (seq_inputs - 1)
    assert scores.shape == (lay.n,) and np.isfinite(scores).all()


def test_shortlist_with_the_attribution_proposer_as_large_as_the_chain_is_exact(tiny_lm):
    lay = _layout(tiny_lm)
    res = approximate_greedy_layout(tiny_lm, lay, options=ApproximateOptions(shortlist=10 ** 3),
                                    proposer=attribution_proposer(tiny_lm, lay))
    assert res.order == greedy_layout(tiny_lm, lay, "joint").order


def test_soft_capped_attention_is_refused(tiny_lm):
    lm = copy.copy(tiny_lm)
    lm.model = copy.deepcopy(tiny_lm.model)
    lm.model.config.attn_logit_softcapping = 50.0
    with pytest.raises(ValueError, match="soft cap"):
        DeletionGainEstimator(lm, _layout(tiny_lm))
