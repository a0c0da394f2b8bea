"""Every registered scorer on a tiny random Llama: valid, deterministic permutations; oracle equalities."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import predictor.scorers as scorers_pkg
from predictor.chains import as_chain
from predictor.greedy import greedy_prune
from predictor.layout import encode_chain
from predictor.objective import sequence_objective
from predictor.observe import observe
from predictor.scorers import SCORERS, Scorer, get_scorer
from predictor.scorers.learned import LearnedScorer, PredictorMismatchError
from predictor.scorers.snapkv import pool1d
from predictor.lexical import token_steps
from predictor.scorers.think_clearly import step_scores

STEP_CHAIN = {"id": "s", "question": "Ann has 2 cats and 3 dogs. How many pets?",
              "reasoning": "Ann has 2 cats.\nShe also has 3 dogs.\nSo 2 + 3 = 5 pets.", "answer": "5"}


class FakeRegressor:
    """Stands in for a trained regressor: a fixed linear map of the features."""

    def __init__(self, n_features: int):
        self.w_ = np.random.default_rng(0).normal(size=n_features)

    def predict(self, X):
        return [np.tanh(np.nan_to_num(x.astype(np.float64)) @ self.w_ * 1e-2) for x in X]


def fake_learned(lm, groups=("logits", "position", "lexical", "attention", "probe")):
    from predictor.features import FeatureSpec, features_from_observation

    spec = FeatureSpec(groups=groups)
    table = features_from_observation(observe(lm, STEP_CHAIN), spec)
    meta = {"feature_spec": spec.to_dict(), "feature_names": list(table.names), "lm_fingerprint": lm.fingerprint,
            "lm_name": lm.name}
    return LearnedScorer(FakeRegressor(len(table.names)), meta)


_FINETUNED: dict = {}


def fake_finetuned(lm):
    """A FinetunedScorer around an LMRanker fitted for one epoch on two chains (cached per LM)."""
    from predictor.chains import as_chain
    from predictor.layout import encode_chain
    from predictor.lm_ranker import LMRanker, RankExample
    from predictor.scorers.finetuned import FinetunedScorer

    if lm.fingerprint not in _FINETUNED:
        ex = []
        for c in (STEP_CHAIN, {"question": "q", "reasoning": "Each pen costs 2 dollars, so 10.", "answer": "10"}):
            lay = encode_chain(lm.tokenizer, as_chain(c))
            ex.append(RankExample(lay, list(range(lay.n)), np.linspace(0, 1, lay.n)))
        ranker = LMRanker(max_epochs=1, head_dim=16, batch_size=2).fit(lm, ex)
        _FINETUNED[lm.fingerprint] = FinetunedScorer(None, lm, ranker=ranker,
                                                     metadata={"regressor": "lm-ranker", "lm_fingerprint": lm.fingerprint})
    return _FINETUNED[lm.fingerprint]


def make(name, lm):
    if name == "learned":
        return fake_learned(lm)
    if name == "finetuned":
        return fake_finetuned(lm)
    return get_scorer(name)


@pytest.mark.parametrize("name", list(SCORERS))
def test_registered_scorer_gives_deterministic_permutation(name, tiny_lm, chains):
    scorer = make(name, tiny_lm)
    assert scorer.name == name
    expensive = scorer.extra_forward_passes(10) > 10  # the oracle: one short chain keeps the test fast
    for chain in chains[:1] if expensive else chains + [STEP_CHAIN]:
        obs = observe(tiny_lm, chain, attention=scorer.needs_attention)
        r1 = scorer.ranks(obs)
        assert sorted(r1.tolist()) == list(range(1, obs.n + 1)), name
        np.testing.assert_array_equal(r1, make(name, tiny_lm).ranks(observe(tiny_lm, chain, attention=True)))
        # a reduced (partly pruned) state works too
        kept = list(range(0, obs.n, 2))
        red = observe(tiny_lm, chain, attention=scorer.needs_attention, kept=kept)
        assert sorted(scorer.ranks(red).tolist()) == list(range(1, len(kept) + 1))


def test_registry_lists_every_scorer_class():
    """Fails when a Scorer subclass in predictor/scorers/*.py is missing from SCORERS (or misnamed)."""
    found = {}
    for mod in pkgutil.iter_modules(scorers_pkg.__path__):
        m = importlib.import_module(f"predictor.scorers.{mod.name}")
        for _, cls in inspect.getmembers(m, inspect.isclass):
            if issubclass(cls, Scorer) and cls.__module__ == m.__name__ and not inspect.isabstract(cls):
                found[cls.name] = cls
    assert found == SCORERS


def test_get_scorer_unknown_name_lists_registered():
    with pytest.raises(ValueError, match="unknown scorer 'nope'.*surprisal"):
        get_scorer("nope")


def test_greedy_scorer_equals_greedy_prune(tiny_lm, chains):
    for chain in chains[:1]:
        ranks = get_scorer("greedy").ranks(observe(tiny_lm, chain, attention=False))
        assert ranks.tolist() == greedy_prune(tiny_lm, chain).ranks
    assert get_scorer("greedy").extra_forward_passes(10) == 55


def test_leave_one_out_is_minus_objective_after_single_deletion(tiny_lm, chains):
    chain = chains[0]
    lay = encode_chain(tiny_lm.tokenizer, as_chain(chain))
    scores = get_scorer("leave-one-out").score(observe(tiny_lm, chain, attention=False))
    p, a = len(lay.prompt_ids), len(lay.answer_ids)
    full = sequence_objective(tiny_lm.model, lay.sequence(), p, a, "joint")
    ref = [full - sequence_objective(tiny_lm.model, lay.sequence([j for j in range(lay.n) if j != i]), p, a, "joint")
           for i in range(lay.n)]
    np.testing.assert_allclose(scores, ref, atol=1e-5)
    # the first token greedy deletes is the leave-one-out minimum
    assert int(np.argmin(scores)) == greedy_prune(tiny_lm, chain).order[0]


def test_surprisal_prunes_most_probable_first(tiny_lm, chains):
    obs = observe(tiny_lm, chains[1], attention=False)
    ranks = get_scorer("surprisal").ranks(obs)
    assert ranks[int(np.argmax(obs.logprob))] == 1
    assert ranks[int(np.argmin(obs.logprob))] == obs.n


def test_position_and_random_conventions(tiny_lm, chains):
    obs = observe(tiny_lm, chains[1], attention=False)
    assert get_scorer("position").ranks(obs).tolist() == list(range(1, obs.n + 1))  # earlier pruned first
    assert get_scorer("position", reverse=True).ranks(obs).tolist() == list(range(obs.n, 0, -1))
    r0, r1 = get_scorer("random", seed=0).ranks(obs), get_scorer("random", seed=1).ranks(obs)
    assert not np.array_equal(r0, r1)


def test_attention_scores_sum_received_attention(tiny_lm, chains):
    obs = observe(tiny_lm, chains[0])
    s = get_scorer("attention").score(obs)
    np.testing.assert_allclose(s, obs.attn["received_sum"].sum(axis=(0, 1)), rtol=1e-6)
    a = len(obs.layout.answer_ids)
    norm = get_scorer("attention", normalize=True).score(obs)
    np.testing.assert_allclose(norm, s / (obs.n - np.arange(obs.n) + a), rtol=1e-6)


def test_snapkv_pooling():
    x = np.array([0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(pool1d(x, 5, "max"), [5, 5, 5, 5, 5, 0, 0])
    np.testing.assert_allclose(pool1d(x, 5, "avg"), [5 / 3, 5 / 4, 1, 1, 1, 0, 0])
    with pytest.raises(ValueError, match="odd"):
        get_scorer("snapkv", kernel=4)


def test_think_clearly_keeps_steps_together(tiny_lm):
    obs = observe(tiny_lm, STEP_CHAIN)
    steps = token_steps(obs.tokens)
    assert steps.max() == 2 and (np.diff(steps) >= 0).all()
    ranks = get_scorer("think-clearly").ranks(obs)
    order_steps = steps[np.argsort(ranks)]
    assert (np.diff(order_steps) != 0).sum() == 2  # each step is pruned as one contiguous block
    s = step_scores(np.array([3.0, 1.0, 0.0, 0.0]), np.array([0, 0, 1, 1]))
    assert s.tolist() == [1.5, 1.0, 0.0, 0.5]


def test_learned_scorer_checks_lm_fingerprint_and_features(tiny_lm, tokenizer, chains):
    from conftest import make_tiny_lm

    scorer = fake_learned(tiny_lm)
    other = make_tiny_lm(tokenizer, seed=1)
    with pytest.raises(PredictorMismatchError, match=f"{tiny_lm.fingerprint}.*{other.fingerprint}"):
        scorer.score(observe(other, chains[0]))
    scorer.metadata = dict(scorer.metadata, lm_fingerprint=other.fingerprint)
    scorer.feature_names = scorer.feature_names[:-1]
    with pytest.raises(ValueError, match="differ from those the predictor was trained on"):
        scorer.score(observe(other, chains[0]))
    assert not fake_learned(tiny_lm, groups=("logits", "position")).needs_attention


def _pool1d_by_hand(x, kernel, mode):
    """The window-by-window pooling that torch's avg_pool1d / max_pool1d replaced (reference)."""
    n, h = len(x), kernel // 2
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        w = x[max(0, i - h): i + h + 1]
        out[i] = w.mean() if mode == "avg" else w.max()
    return out


def test_pool1d_equals_the_window_loop():
    rng = np.random.default_rng(0)
    for t in range(600):
        n = int(rng.integers(1, 90))
        x = rng.normal(size=n) * 10.0 ** int(rng.integers(-3, 3))
        if t % 4 == 0:
            x = np.round(x, 1)  # ties and plateaus
        for kernel in (1, 3, 5, 7):
            for mode in ("avg", "max"):
                np.testing.assert_array_equal(pool1d(x, kernel, mode), _pool1d_by_hand(x, kernel, mode))
        for kernel in (9, 31):  # wider windows: numpy sums in another order
            np.testing.assert_array_equal(pool1d(x, kernel, "max"), _pool1d_by_hand(x, kernel, "max"))
            np.testing.assert_allclose(pool1d(x, kernel, "avg"), _pool1d_by_hand(x, kernel, "avg"), rtol=0,
                                       atol=1e-14 * np.abs(x).max())
    assert pool1d(np.zeros(0), 5).shape == (0,)


def test_local_gain_scorer_puts_the_highest_local_gain_first(tiny_lm, chains):
    """local-gain: ranks follow minus the search's local gain (skip log-prob - next log-prob - own)."""
    from predictor.observe import observe
    from predictor.scorers import get_scorer

    obs = observe(tiny_lm, chains[0])
    gain = obs.skip_logprob.astype(np.float64) - obs.next_logprob - obs.logprob
    ranks = get_scorer("local-gain").ranks(obs)
    assert ranks[int(np.argmax(gain))] == ranks.min()
    assert ranks[int(np.argmin(gain))] == ranks.max()
    blind = observe(tiny_lm, chains[0], forward=False)
    with pytest.raises(ValueError, match="skip_logprob"):
        get_scorer("local-gain").score(blind)
