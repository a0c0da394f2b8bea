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
