"""Opt-in checks on the embedded SmolLM2 model (`pytest -m embedded`; ~1 minute on 2 cores)."""
from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.embedded

CHAIN = {"id": "e1", "question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
         "reasoning": "Tom has 3 + 4 = 7 apples.", "answer": "7"}


@pytest.fixture(scope="module")
def lm():
    from predictor.lm import load_lm

    return load_lm(device="cpu")


def test_embedded_lm_shape(lm):
    assert (lm.num_layers, lm.num_heads) == (30, 9)
    assert sum(p.numel() for p in lm.model.parameters()) == pytest.approx(134.5e6, rel=0.01)


def test_fast_greedy_matches_reference_on_embedded(lm):
    from predictor.greedy import SearchOptions, greedy_prune
    from predictor.greedy.reference import greedy_prune_reference

    fast = greedy_prune(lm, CHAIN, SearchOptions(max_steps=3))
    ref = greedy_prune_reference(lm, CHAIN, max_steps=3)
    assert fast.order == ref.order
    np.testing.assert_allclose(fast.trajectory, ref.trajectory, atol=1e-3)


def test_shipped_predictor_predicts_a_permutation(lm):
    from predictor import RankPredictor

    rp = RankPredictor.load(lm=lm)
    ranks = rp.predict_ranks(CHAIN)
    assert sorted(ranks.tolist()) == list(range(1, len(ranks) + 1))
    res = rp.prune(CHAIN, keep_ratio=0.5)
    assert len(res.kept) == math.floor(len(ranks) * 0.5 + 0.5)  # round half up, exactly
    assert res.kept == sorted(res.kept)


def test_shipped_predictors_same_ranks_chunked_and_batched_as_the_eager_reference(lm):
    """The fast path (chunked attention statistics, chains batched) gives the shipped predictors the
    features of the eager reference (one chain at a time) on real GSM8K chains: scores to round-off,
    identical ranks."""
    from predictor import RankPredictor
    from predictor.observe import observe

    chains = [CHAIN, {"id": "e2", "question": "A pen costs $2. How much do 5 pens cost?",
                      "reasoning": "Each pen costs $2.\nSo 5 pens cost 5 * 2 = $10 in total.", "answer": "10"}]
    for name in (None, "universal"):
        rp = RankPredictor.load(name, lm=lm)
        kw = dict(rp.scorer.observe_kwargs)
        ref = [rp.scorer.score(observe(lm, c, attention=True, method="eager", **kw)) for c in chains]
        fast = [np.asarray(s) for s in rp.score_many(chains)]
        for a, b in zip(fast, ref):
            np.testing.assert_allclose(a, b, atol=1e-4)
        for r, s in zip(rp.predict_ranks(chains), ref):
            from predictor.scorers.base import scores_to_ranks

            np.testing.assert_array_equal(r, scores_to_ranks(s))


def test_bound_and_reuse_give_the_stored_order_with_fewer_tokens(lm, monkeypatch):
    """On a real stored chain (23 reasoning tokens), the CPU default (suffix reuse + the bound, packed
    attention) gives the stored deletion order of a whole search and runs fewer LM tokens than reuse
    alone, which gives it too, as does the default through the 4D-mask attention path."""
    from pathlib import Path

    import predictor.greedy.suffix_reuse as gsr
    from predictor.greedy import SearchOptions, greedy_layout
    from predictor.layout import Layout
    from predictor.ranked import read_ranked

    path = Path(__file__).resolve().parents[1] / "data/ranked/gsm8k-smollm2-joint.jsonl"
    rec = next(r for r in read_ranked(path, objective="joint") if r["id"] == "gsm8k-train-588")
    lay = Layout(rec["prompt_ids"], rec["reasoning_ids"], rec["answer_ids"])
    fast = greedy_layout(lm, lay)
    plain = greedy_layout(lm, lay, SearchOptions(bound=False))
    assert fast.order == plain.order == rec["order"]
    np.testing.assert_allclose(fast.trajectory, plain.trajectory, atol=1e-3)
    print(f"tokens: default {fast.lm_tokens}, reuse alone {plain.lm_tokens}")
    assert fast.lm_tokens < 0.6 * plain.lm_tokens  # 1,926 vs 3,974 measured (0.48)
    monkeypatch.setattr(gsr, "supported", lambda model: False)
    masked = greedy_layout(lm, lay)
    assert masked.order == rec["order"] and masked.lm_tokens == fast.lm_tokens
    np.testing.assert_allclose(masked.trajectory, fast.trajectory, atol=1e-3)
