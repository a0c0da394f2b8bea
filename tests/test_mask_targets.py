"""Random-deletion-mask targets: exact objectives of masked sequences, targets equal numpy references."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from predictor.layout import encode_chain
from predictor.chains import as_chain
from predictor.mask_targets import (MaskTargetOptions, draw_masks, mask_targets, masked_objectives,
                                    per_token_targets, target_ranks)

CHAIN = {"id": "c1", "question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
         "reasoning": "Tom starts with 3 apples. He buys 4 more, so 3 + 4 = 7 apples in total.",
         "answer": "7"}


def slow_objective(model, ids: list[int], n_prompt: int, n_answer: int, objective: str) -> float:
    """Direct forward of the whole masked sequence, log-softmax, sum of the scored tokens' log-probs."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    start = n_prompt if objective == "joint" else len(ids) - n_answer
    return float(sum(lp[t - 1, ids[t]] for t in range(start, len(ids))))


@pytest.mark.parametrize("objective", ["joint", "answer"])
@pytest.mark.parametrize("batch_tokens", [None, 7])  # 7: blocks of one or two rows
def test_each_mask_objective_equals_a_direct_forward(tiny_lm, objective, batch_tokens):
    lay = encode_chain(tiny_lm.tokenizer, as_chain(CHAIN))
    masks, _ = draw_masks(lay.n, MaskTargetOptions(masks=12, seed=3), "c1")
    extra = np.zeros((3, lay.n), dtype=bool)  # nothing kept; only the first; only the last
    extra[1, 0] = extra[2, -1] = True
    masks = np.vstack([masks, extra, np.ones((1, lay.n), dtype=bool)])
    got, tokens = masked_objectives(tiny_lm, lay, masks, objective, batch_tokens)
    p, a = len(lay.prompt_ids), len(lay.answer_ids)
    want = [slow_objective(tiny_lm.model, lay.sequence(np.flatnonzero(m).tolist()), p, a, objective) for m in masks]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert tokens == p + sum(int(m.sum()) + a - 1 for m in masks)


def test_draw_masks_spreads_keep_rates_and_is_seeded():
    opts = MaskTargetOptions(masks=40, keep_min=0.4, keep_max=0.95, seed=1)
    masks, rates = draw_masks(50, opts, "chain-a")
    assert masks.shape == (40, 50) and masks.dtype == bool
    assert rates.min() >= 0.4 and rates.max() < 0.95
    assert np.histogram(rates, bins=4, range=(0.4, 0.95))[0].tolist() == [10, 10, 10, 10]  # stratified
    np.testing.assert_array_equal(masks.sum(1), np.rint(rates * 50).astype(int))
    again, _ = draw_masks(50, opts, "chain-a")
    other, _ = draw_masks(50, opts, "chain-b")
    np.testing.assert_array_equal(masks, again)
    assert (masks != other).any()
    assert (masks != draw_masks(50, MaskTargetOptions(masks=40, seed=2), "chain-a")[0]).any()


def numpy_targets(Z, y, target, ridge):
    """Independent references: ridge regression with an unpenalised intercept via an augmented
    least-squares problem; the difference of group means by explicit loops."""
    Z = Z.astype(np.float64)
    M, n = Z.shape
    if target == "regression":
        X = np.hstack([np.ones((M, 1)), Z])
        A = np.vstack([X, np.hstack([np.zeros((n, 1)), np.sqrt(ridge) * np.eye(n)])])
        b = np.concatenate([y, np.zeros(n)])
        coef = np.linalg.lstsq(A, b, rcond=None)[0]
        return coef[1:], coef[0]
    out = np.zeros(n)
    for i in range(n):
        on, off = y[Z[:, i] == 1], y[Z[:, i] == 0]
        out[i] = on.mean() - off.mean() if len(on) and len(off) else 0.0
    return out, y.mean()


@pytest.mark.parametrize("target,ridge", [("regression", 1.0), ("regression", 0.05), ("difference", 1.0)])
def test_targets_equal_a_numpy_reference(tiny_lm, target, ridge):
    opts = MaskTargetOptions(masks=24, seed=5, target=target, ridge=ridge)
    res = mask_targets(tiny_lm, CHAIN, opts)
    lay = encode_chain(tiny_lm.tokenizer, as_chain(CHAIN))
    assert res.masks.shape == (24, lay.n) and res.targets.shape == (lay.n,)
    want, intercept = numpy_targets(res.masks, res.objectives, target, ridge)
    np.testing.assert_allclose(res.targets, want, rtol=1e-9, atol=1e-9)
    assert res.intercept == pytest.approx(intercept, abs=1e-9)
    p, a = len(lay.prompt_ids), len(lay.answer_ids)
    assert res.full_objective == pytest.approx(slow_objective(tiny_lm.model, lay.sequence(), p, a, "joint"), abs=1e-6)
    np.testing.assert_array_equal(res.ranks, target_ranks(res.targets))


def test_difference_target_of_a_token_never_deleted_is_zero():
    Z = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1]], dtype=bool)
    y = np.array([-3.0, -5.0, -1.0])
    t, icpt = per_token_targets(Z, y, "difference")
    assert t[0] == 0.0 and t[1] == pytest.approx(-2.0 - -5.0) and t[2] == pytest.approx(-3.0 - -3.0)
    assert icpt == pytest.approx(-3.0)


def test_regression_recovers_an_additive_objective():
    rng = np.random.default_rng(0)
    w = rng.normal(size=8)
    Z = rng.random((200, 8)) < 0.7
    t, icpt = per_token_targets(Z, 2.0 + Z @ w, "regression", ridge=0.0)
    np.testing.assert_allclose(t, w, atol=1e-9)
    assert icpt == pytest.approx(2.0)


def test_target_ranks_ascending_ties_to_the_lower_index():
    assert target_ranks(np.array([0.5, -1.0, 0.5, 2.0])).tolist() == [2, 1, 3, 4]


@pytest.mark.parametrize("kw,match", [
    ({"masks": 1}, "masks"), ({"masks": 2.5}, "masks"), ({"keep_min": 0.0}, "keep_min"),
    ({"keep_min": 0.9, "keep_max": 0.5}, "keep_min"), ({"keep_max": 1.1}, "keep_min"),
    ({"target": "lasso"}, "target"), ({"ridge": -1.0}, "ridge"), ({"ridge": float("nan")}, "ridge"),
    ({"objective": "loss"}, "objective"), ({"batch_tokens": 0}, "batch_tokens"), ({"seed": 1.5}, "seed"),
])
def test_options_are_validated(kw, match):
    with pytest.raises(ValueError, match=match):
        MaskTargetOptions(**kw)


def test_bad_mask_shape_is_rejected(tiny_lm):
    lay = encode_chain(tiny_lm.tokenizer, as_chain(CHAIN))
    with pytest.raises(ValueError, match="masks must be"):
        masked_objectives(tiny_lm, lay, np.ones((2, lay.n + 1), dtype=bool))
