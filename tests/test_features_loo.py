"""The `loo` feature group: greedy's exact first step as per-token columns, cached apart from the rest."""
from __future__ import annotations

import numpy as np
import pytest

from predictor.chains import as_chain
from predictor.feature_cache import FeatureCache
from predictor.features import FeatureSpec, extract_features, feature_names
from predictor.greedy import greedy_prune
from predictor.greedy.leave_one_out import leave_one_out_gains
from predictor.layout import encode_chain
from predictor.objective import sequence_objective
from predictor.observe import observe

LOO = ["loo.gain", "loo.rest", "loo.gain_z", "loo.gain_rank"]


def _reference_gains(lm, lay, kept=None):
    """Objective without each kept token minus the objective of the kept sequence, by plain forwards."""
    kept = list(range(lay.n)) if kept is None else kept
    p, a = len(lay.prompt_ids), len(lay.answer_ids)
    full = sequence_objective(lm.model, lay.sequence(kept), p, a, "joint")
    return np.array([sequence_objective(lm.model, lay.sequence([k for k in kept if k != i]), p, a, "joint") - full
                     for i in kept])


def test_gains_equal_plain_forwards_and_count_tokens(tiny_lm, chains):
    lay = encode_chain(tiny_lm.tokenizer, as_chain(chains[0]))
    gain, tokens = leave_one_out_gains(tiny_lm, lay)
    np.testing.assert_allclose(gain, _reference_gains(tiny_lm, lay), atol=1e-5)
    assert int(np.argmax(gain)) == greedy_prune(tiny_lm, chains[0]).order[0]  # greedy's first deletion
    # the full sequence once, then each candidate's suffix (the tokens after it and the answer)
    assert lay.n * (lay.n - 1) // 2 <= tokens <= lay.total + lay.n * (lay.n + len(lay.answer_ids))


def test_columns(tiny_lm, chains):
    table = extract_features(tiny_lm, chains[1], FeatureSpec(groups=("local", "loo")))
    lay = encode_chain(tiny_lm.tokenizer, as_chain(chains[1]))
    assert table.names[-4:] == LOO and table.groups[-4:] == ["loo"] * 4
    gain = table.column("loo.gain").astype(np.float64)
    np.testing.assert_allclose(gain, _reference_gains(tiny_lm, lay), atol=1e-4)
    np.testing.assert_allclose(table.column("loo.rest"), gain - table.column("local.gain"), atol=1e-5)
    ranks = table.column("loo.gain_rank")
    assert ranks[int(np.argmax(gain))] == pytest.approx(0.5 / lay.n)  # highest gain: deleted first
    assert sorted(np.round(ranks * lay.n - 0.5).astype(int)) == list(range(lay.n))
    assert abs(float(table.column("loo.gain_z").mean())) < 1e-5


def test_names_without_an_lm():
    names, groups = feature_names(FeatureSpec(groups=("logits", "loo")), num_layers=2, num_heads=2)
    assert names[-4:] == LOO and groups.count("loo") == 4


def test_observation_without_lm_is_refused(tiny_lm, chains):
    from dataclasses import replace

    from predictor.features import features_from_observation

    obs = replace(observe(tiny_lm, chains[0], attention=False), lm=None)
    with pytest.raises(ValueError, match="needs the LM"):
        features_from_observation(obs, FeatureSpec(groups=("loo",)))


def test_cache_stores_loo_apart_and_joins_the_same_table(tmp_path, tiny_lm, chains):
    cache = FeatureCache(tmp_path)
    base = FeatureSpec(groups=("logits", "position", "local"))
    with_loo = FeatureSpec(groups=("logits", "position", "local", "loo"))
    first = cache.features_for(tiny_lm, chains[0], base)
    assert (cache.hits, cache.misses) == (0, 1)
    joined = cache.features_for(tiny_lm, chains[0], with_loo)
    assert cache.hits == 1  # the other groups' table is reused, only the loo table is computed
    direct = extract_features(tiny_lm, chains[0], with_loo)
    assert joined.names == direct.names and joined.groups == direct.groups
    np.testing.assert_allclose(joined.values, direct.values, atol=1e-5)
    np.testing.assert_array_equal(joined.values[:, : len(first.names)], first.values)
    again = FeatureCache(tmp_path).features_for(tiny_lm, chains[0], with_loo)
    np.testing.assert_array_equal(again.values, joined.values)


def test_pruned_state(tiny_lm, chains):
    lay = encode_chain(tiny_lm.tokenizer, as_chain(chains[1]))
    kept = [i for i in range(lay.n) if i % 3]
    table = extract_features(tiny_lm, chains[1], FeatureSpec(groups=("loo",)), kept=kept)
    np.testing.assert_allclose(table.column("loo.gain"), _reference_gains(tiny_lm, lay, kept), atol=1e-4)


def test_learned_scorer_counts_the_extra_passes():
    from predictor.scorers.learned import LearnedScorer

    def scorer(groups):
        names, _ = feature_names(FeatureSpec(groups=groups), 2, 2)
        return LearnedScorer(regressor=object(), metadata={"feature_spec": FeatureSpec(groups=groups).to_dict(),
                                                           "feature_names": names})
    assert scorer(("logits", "loo")).extra_forward_passes(7) == 7
    assert scorer(("logits",)).extra_forward_passes(7) == 0


def test_sliding_window_models_past_their_window_use_plain_forwards(tiny_lm, chains, monkeypatch):
    import predictor.greedy.leave_one_out as loo

    lay = encode_chain(tiny_lm.tokenizer, as_chain(chains[0]))
    fast, _ = leave_one_out_gains(tiny_lm, lay)
    monkeypatch.setattr(loo, "needs_reference", lambda lm, lay: True)
    slow, tokens = leave_one_out_gains(tiny_lm, lay)
    np.testing.assert_allclose(slow, fast, atol=1e-5)
    assert tokens == lay.total * (lay.n + 1) - lay.n  # the full sequence and n sequences one token shorter
