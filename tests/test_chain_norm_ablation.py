"""benchmarks/chain_norm_ablation.py: the within-chain z-scores and ranks it adds as columns."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import load_script


@pytest.fixture(scope="module")
def ablation():
    return load_script("benchmarks/chain_norm_ablation.py")


def test_chain_normalized(ablation):
    X = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 7.0], [10.0, 5.0]])
    z = ablation.chain_normalized(X, "Z")
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(z[:, 0], (X[:, 0] - X[:, 0].mean()) / (X[:, 0].std() + 1e-6), rtol=1e-5)
    r = ablation.chain_normalized(X, "R")
    np.testing.assert_allclose(r[:, 0], [0.125, 0.625, 0.375, 0.875])  # (rank - 0.5) / n
    np.testing.assert_allclose(r[:, 1], [0.375, 0.375, 0.875, 0.375])  # ties share the average rank
    shifted = ablation.chain_normalized(X * 3 + 100, "R")  # invariant to a chain-wide monotone shift
    np.testing.assert_allclose(shifted, r)
    with pytest.raises(ValueError):
        ablation.chain_normalized(X, "Q")
