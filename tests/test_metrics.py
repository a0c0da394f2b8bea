"""Agreement metrics on plain arrays."""
from __future__ import annotations

import numpy as np
import pytest

from predictor.metrics import (bootstrap_ci, mean_kendall, normalize, per_chain_spearman,
                                          pooled_spearman, precision_first_pruned, summarize)


def _ranks(rng, n):
    return rng.permutation(n) + 1


def test_perfect_and_reversed_scorers():
    rng = np.random.default_rng(0)
    true = [_ranks(rng, n) for n in (5, 17, 40)]
    rev = [len(t) + 1 - t for t in true]
    assert np.allclose(per_chain_spearman(true, true), 1.0)
    assert np.allclose(per_chain_spearman(rev, true), -1.0)
    assert pooled_spearman(true, true) == pytest.approx(1.0)
    assert pooled_spearman(rev, true) == pytest.approx(-1.0)
    assert mean_kendall(true, true) == pytest.approx(1.0)
    assert mean_kendall(rev, true) == pytest.approx(-1.0)
    # a monotone transform of the ranks (scores, not ranks) agrees perfectly too
    assert np.allclose(per_chain_spearman([np.exp(t / 3.0) for t in true], true), 1.0)
    s = summarize(true, true)
    assert s["spearman_mean"] == pytest.approx(1.0)
    assert s["precision_first_25"] == 1.0 and s["precision_first_50"] == 1.0
    assert summarize(rev[2:], true[2:])["precision_first_50"] == 0.0  # even n=40: halves are disjoint


def test_constant_and_tiny_inputs_are_zero_not_nan():
    rho = per_chain_spearman([np.ones(6), np.array([1.0])], [np.arange(6) + 1, np.array([1])])
    assert rho.tolist() == [0.0, 0.0]
    assert np.allclose(normalize([3]), 0.5)


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        per_chain_spearman([np.arange(3)], [np.arange(4)])
    with pytest.raises(ValueError):
        per_chain_spearman([np.arange(3)], [])


def test_bootstrap_interval_contains_mean_and_shrinks():
    rng = np.random.default_rng(1)
    small = rng.normal(0.4, 0.2, 10)
    big = rng.normal(0.4, 0.2, 1000)
    for v in (small, big, np.array([0.3, 0.3, 0.3]), np.array([0.7])):
        mean, lo, hi = bootstrap_ci(v, n_boot=500)
        assert lo <= mean <= hi
        assert mean == pytest.approx(float(np.mean(v)))
    _, lo_s, hi_s = bootstrap_ci(small, n_boot=500)
    _, lo_b, hi_b = bootstrap_ci(big, n_boot=500)
    assert hi_b - lo_b < hi_s - lo_s
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)  # deterministic
    assert all(np.isnan(bootstrap_ci([])))


def test_precision_first_pruned():
    true = np.array([1, 2, 3, 4, 5, 6, 7, 8])
    pred = np.array([2, 1, 8, 7, 6, 5, 4, 3])  # first two swapped, rest reversed
    assert precision_first_pruned(pred, true, 0.25) == 1.0
    assert precision_first_pruned(pred, true, 0.5) == 0.5
    with pytest.raises(ValueError):
        precision_first_pruned(pred, true, 0.0)


def _bootstrap_ci_by_hand(values, n_boot=2000, seed=0, alpha=0.05, weights=None):
    """The hand-written bootstrap that scipy.stats.bootstrap replaced (reference for the test below)."""
    v = np.asarray(values, dtype=np.float64)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    keep = np.isfinite(v) if w is None else np.isfinite(v) & np.isfinite(w)
    v, w = v[keep], (None if w is None else w[keep])

    def stat(idx):
        return v[idx].mean(axis=-1) if w is None else (w * v)[idx].sum(axis=-1) / w[idx].sum(axis=-1)

    if len(v) == 0 or (w is not None and w.sum() <= 0):
        return float("nan"), float("nan"), float("nan")
    mean = float(stat(np.arange(len(v))))
    if len(v) == 1:
        return mean, mean, mean
    means = stat(np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v))))
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return mean, float(min(lo, mean)), float(max(hi, mean))


def test_bootstrap_ci_equals_the_hand_written_percentile_bootstrap():
    """Same draws, same percentile interval: equal up to the round-off of the interpolation."""
    rng = np.random.default_rng(7)
    for t in range(120):
        n = int(rng.integers(1, 60))
        v = rng.normal(size=n)
        if t % 7 == 0:
            v[rng.integers(0, n)] = np.nan
        w = rng.integers(1, 50, size=n).astype(float) if t % 2 else None
        kw = dict(n_boot=int(rng.choice([50, 999, 2000])), seed=int(rng.integers(0, 100)),
                  alpha=float(rng.choice([0.05, 0.1])), weights=w)
        np.testing.assert_allclose(bootstrap_ci(v, **kw), _bootstrap_ci_by_hand(v, **kw), rtol=0, atol=1e-12)


def test_scores_to_ranks_equals_the_stable_argsort():
    """rankdata(method="ordinal") gives the ranks of a stable argsort: among ties the lower index first."""
    from predictor.ranks import scores_to_ranks

    rng = np.random.default_rng(3)
    for t in range(500):
        n = int(rng.integers(1, 200))
        s = rng.integers(0, 4, size=n).astype(float) if t % 2 else rng.normal(size=n)
        order = np.argsort(s, kind="stable")
        want = np.empty(n, dtype=np.int64)
        want[order] = np.arange(1, n + 1)
        got = scores_to_ranks(s)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(scores_to_ranks([2.0, 1.0, 1.0, 3.0]), [3, 1, 2, 4])
    with pytest.raises(ValueError):
        scores_to_ranks([1.0, np.nan])
