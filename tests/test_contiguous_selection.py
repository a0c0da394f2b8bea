"""Contiguity-aware selection: the DP equals exhaustive search; its limits are the known selections."""
import itertools

import numpy as np
import pytest

from predictor.contiguous_selection import rank_values, removed_runs, select_kept_contiguous
from predictor.pruning import select_kept


def _brute(v, k, gap_cost, prot, groups):
    """Smallest feasible kept count >= k, then the best objective: exhaustive over unit subsets."""
    n, best = len(v), None
    for mask in itertools.product([0, 1], repeat=len(groups)):
        kept = sorted(i for m, g in zip(mask, groups) if m for i in g)
        if len(kept) < k or any(prot[i] for m, g in zip(mask, groups) if not m for i in g):
            continue
        key = (len(kept), -(v[kept].sum() - gap_cost * removed_runs(kept, n)))
        if best is None or key < best:
            best = key
    return best


def test_dp_equals_exhaustive_search_with_units_and_protection():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 9))
        v = rng.random(n)
        cuts = sorted(set(rng.integers(1, n, size=rng.integers(0, n)).tolist())) if n > 1 else []
        bounds = [0] + cuts + [n]
        groups = [list(range(a, b)) for a, b in zip(bounds, bounds[1:])]
        prot = rng.random(n) < 0.15
        k = int(rng.integers(1, n + 1))
        gap_cost = float(rng.choice([0.0, 0.1, 0.5, 2.0, 10.0]))
        got = select_kept_contiguous(v, k, gap_cost, prot, groups)
        want = _brute(v, k, gap_cost, prot, groups)
        assert len(got) == want[0]
        assert v[got].sum() - gap_cost * removed_runs(got, n) == pytest.approx(-want[1], abs=1e-9)
        assert prot[[i for i in range(n) if i not in got]].sum() == 0


def test_zero_gap_cost_is_plain_top_k_selection():
    rng = np.random.default_rng(1)
    for n in (5, 17, 40):
        ranks = rng.permutation(n) + 1
        for k in (1, n // 3, n - 1, n):
            plain = select_kept(ranks, [""] * n, k, np.zeros(n, dtype=bool))
            assert select_kept_contiguous(rank_values(ranks), k, 0.0) == plain


def test_large_gap_cost_removes_one_lowest_valued_run():
    ranks = np.array([3, 9, 1, 2, 4, 8, 10, 7, 6, 5])  # lowest-valued run of 3: indices 2..4 (1+2+4)
    kept = select_kept_contiguous(rank_values(ranks), 7, 1000.0)
    assert removed_runs(kept, 10) == 1
    assert [i for i in range(10) if i not in kept] == [2, 3, 4]


def test_full_position_weight_keeps_the_suffix():
    ranks = np.random.default_rng(2).permutation(12) + 1
    assert select_kept_contiguous(rank_values(ranks, 1.0), 5, 0.0) == list(range(7, 12))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="k must be"):
        select_kept_contiguous(np.ones(3), 0, 1.0)
    with pytest.raises(ValueError, match="gap_cost"):
        select_kept_contiguous(np.ones(3), 1, -1.0)
    with pytest.raises(ValueError, match="groups"):
        select_kept_contiguous(np.ones(3), 1, 1.0, groups=[[0, 2], [1]])
    with pytest.raises(ValueError, match="position_weight"):
        rank_values(np.arange(1, 4), 1.5)


def _reference_dp(v, k, gap_cost, prot, groups):
    """The plain DP (full U x (n+1) back-pointers over every count): the reference the banded,
    bit-packed one must equal, kept set for kept set (ties included)."""
    n = len(v)
    neg = -np.inf
    keep = np.full(n + 1, neg)
    keep[0] = 0.0
    gone = np.full(n + 1, neg)
    fk = np.zeros((len(groups), n + 1), dtype=bool)
    fg = np.zeros((len(groups), n + 1), dtype=bool)
    for u, g in enumerate(groups):
        s, val = len(g), float(v[g].sum())
        nk = np.full(n + 1, neg)
        src = gone[: n + 1 - s] > keep[: n + 1 - s]
        nk[s:] = np.where(src, gone[: n + 1 - s], keep[: n + 1 - s]) + val
        fk[u, s:] = src
        if prot[g].any():
            ng = np.full(n + 1, neg)
        else:
            o = keep - gap_cost
            sg = gone >= o
            ng = np.where(sg, gone, o)
            fg[u] = sg
        keep, gone = nk, ng
    final = np.maximum(keep, gone)
    c = k + int(np.flatnonzero(np.isfinite(final[k:]))[0])
    st = bool(gone[c] > keep[c])
    kept = []
    for u in range(len(groups) - 1, -1, -1):
        if st:
            st = bool(fg[u, c])
        else:
            kept.extend(groups[u])
            st = bool(fk[u, c])
            c -= len(groups[u])
    return sorted(kept)


def _random_units(rng, n, p_cut=0.7, max_unit=4):
    groups, i = [], 0
    while i < n:
        s = 1 if rng.random() < p_cut else int(rng.integers(2, max_unit + 1))
        groups.append(list(range(i, min(n, i + s))))
        i += s
    return groups


def test_dp_equals_the_full_reference_dp_ties_included():
    rng = np.random.default_rng(5)
    for trial in range(400):
        n = int(rng.integers(1, 60))
        groups = _random_units(rng, n)
        prot = rng.random(n) < rng.choice([0.0, 0.1, 0.4])
        # quantized values and gap costs make many exact ties, so tie-breaking is compared too
        v = rng.integers(0, 4, size=n) / 4 if trial % 2 else rng.random(n)
        k = int(rng.integers(1, n + 1))
        gap_cost = float(rng.choice([0.0, 0.25, 0.5, 1.0, 3.0]))
        assert select_kept_contiguous(v, k, gap_cost, prot, groups) == _reference_dp(v, k, gap_cost, prot, groups)


def test_long_chain_back_pointers_stay_small():
    """A 4,000-token chain: the full U x (n+1) boolean back-pointers would take 2 x 16 MB; the banded,
    bit-packed ones take well under 2 MB at keep 0.5 and the result is the reference's."""
    import tracemalloc

    n = 4000
    rng = np.random.default_rng(6)
    ranks = rng.permutation(n) + 1
    groups = _random_units(rng, n, p_cut=0.9, max_unit=3)
    prot = np.zeros(n, dtype=bool)
    prot[rng.choice(n, 40, replace=False)] = True
    v = rank_values(ranks, 0.3)
    tracemalloc.start()
    got = select_kept_contiguous(v, n // 2, 2.0, prot, groups)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * 2**20
    assert got == _reference_dp(v, n // 2, 2.0, prot, groups)


def test_huge_gap_costs_keep_the_budget_and_the_best_of_the_fewest_runs():
    """A gap cost beyond the values' whole range means "fewest removed runs, then the best values";
    costs near the float maximum must not overflow the DP into keeping every token."""
    v = np.linspace(0.1, 1.0, 9)
    prot = np.zeros(9, dtype=bool)
    prot[4] = True  # the kept middle token forces two removed runs
    want = select_kept_contiguous(v, 3, 100.0, prot)
    assert want == [4, 7, 8]
    for g in (1e17, 1e300, 1e308, 1.7e308):
        assert select_kept_contiguous(v, 3, g, prot) == want
