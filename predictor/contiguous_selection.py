"""Contiguity-aware selection: which tokens to keep when every removed gap has a cost.

Plain selection keeps the k tokens ranked highest, wherever they are; the kept text is then
scattered. The greedy search's JOINT objective, log P(R_kept, A | Q), also scores the kept
reasoning's own likelihood, and scattered tokens are disfluent text: measured on the shipped
predictor's test chains, keeping a contiguous suffix (the `position` baseline) recovers more of
the random-to-greedy JOINT gap at keep 0.5 and 0.3 than greedy's own survivors (docs/quality.md §8).

This module keeps exactly k tokens (whole units) maximizing

    sum of kept tokens' values  -  gap_cost * (number of maximal runs of removed tokens)

by dynamic programming over units (a segmentation DP in the style of Viterbi) restricted to the
counts that can still end at the budget: O(k * (n - k)) time and about k * (n - k) / 4 bytes of
bit-packed back-pointers for n tokens. A token's value is its normalized
predicted rank, rank / n in (0, 1], so gap_cost is in units of "one token's full rank range":
gap_cost = 0 keeps the top-k ranks (plain selection), a large gap_cost removes one contiguous run
(the lowest-valued one). Protected units are always kept; when exactly k tokens cannot be kept with
whole units, the smallest feasible count above k is kept (`select_kept`, which walks units in rank order
and passes over one too large, may keep a few more).
"""
from __future__ import annotations

import numpy as np


def rank_values(ranks: np.ndarray, position_weight: float = 0.0) -> np.ndarray:
    """Per-token values for the DP: (1 - w) * rank / n + w * (i + 1) / n, float [n].

    ranks: int [n], 1 = pruned first. position_weight w in [0, 1] blends in the token's relative
    position (w = 1: later tokens are worth more, the `position` baseline's preference)."""
    r = np.asarray(ranks, dtype=np.float64)
    n = len(r)
    if not 0.0 <= position_weight <= 1.0:
        raise ValueError(f"position_weight must be in [0, 1], got {position_weight!r}")
    return (1.0 - position_weight) * r / n + position_weight * np.arange(1, n + 1) / n


def smallest_feasible_count(sizes: list[int], unit_protected: list[bool], k: int) -> int:
    """The smallest token count >= k that whole units can keep: every protected unit plus any subset
    of the others (subset sum over unit sizes as a bitset; keeping all units is always feasible)."""
    must = sum(s for s, p in zip(sizes, unit_protected) if p)
    free = [s for s, p in zip(sizes, unit_protected) if not p]
    ones = sum(1 for s in free if s == 1)
    reach = (1 << (ones + 1)) - 1  # bit j: j tokens of the unprotected units can be kept
    for s in free:
        if s > 1:
            reach |= reach << s
    above = reach >> max(0, k - must)
    return max(k, must) + ((above & -above).bit_length() - 1)


def select_kept_contiguous(values: np.ndarray, k: int, gap_cost: float, protected: np.ndarray | None = None,
                           groups: list[list[int]] | None = None) -> list[int]:
    """Sorted kept token indices: the whole-unit set of (at least) k tokens with the best
    sum(values[kept]) - gap_cost * (removed runs).

    values: float [n], finite (higher = more worth keeping); k: tokens to keep, 1 <= k <= n;
    gap_cost >= 0; protected: bool [n] (a unit holding a protected token is always kept); groups:
    token indices of each unit, consecutive and covering 0..n-1 in order (default: one unit per token).
    Keeps exactly k tokens when whole units allow it, otherwise the smallest feasible count C above k
    (all tokens at worst). Raises ValueError for a bad k, non-finite values, a negative gap_cost or
    groups that do not tile 0..n-1 in order.

    Cost: the DP runs only over the counts that can still end at C (after the units holding T
    tokens, counts in [C - (n - T), min(T, C)]) and stores its back-pointers bit-packed: about
    C * (n - C) / 4 bytes (5 MB for 8,000 tokens at keep 0.5, against 128 MB for the full U x n
    boolean table), and O(C * (n - C)) time; the result is the full table's, ties included.
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if not gap_cost >= 0:
        raise ValueError(f"gap_cost must be >= 0, got {gap_cost!r}")
    if not np.isfinite(v).all():
        raise ValueError("values must be finite")
    groups = [[i] for i in range(n)] if groups is None else [list(g) for g in groups]
    if [i for g in groups for i in g] != list(range(n)):
        raise ValueError("groups must be consecutive runs covering token indices 0..n-1 in order")
    prot = np.zeros(n, dtype=bool) if protected is None else np.asarray(protected, dtype=bool)
    sizes = [len(g) for g in groups]
    unit_prot = [bool(prot[g].any()) for g in groups]
    top = smallest_feasible_count(sizes, unit_prot, k)
    # Beyond the values' whole range, a gap cost only says "fewest runs first, then the best values":
    # any cost above sum|v| picks the same set, and a smaller one keeps the sums exact (no float overflow
    # or values lost in rounding next to 1e17 x runs).
    gap_cost = min(float(gap_cost), float(np.abs(v).sum()) + 1.0)
    neg = -np.inf
    # keep[c] / gone[c]: best value with c tokens kept so far, the last unit kept / removed.
    # Start as if a kept unit preceded the chain, so removing the first unit opens a run.
    keep = np.full(top + 1, neg)
    keep[0] = 0.0
    gone = np.full(top + 1, neg)
    # the counts unit u can end at: lo[u]..hi[u]; per unit and count two back-pointer bits, packed
    # into flat byte arrays at offset[u]: "keep came from gone", "remove came from gone"
    done = np.cumsum(sizes)
    lo = np.maximum(0, top - (n - done))
    hi = np.minimum(done, top)
    offset = np.concatenate([[0], np.cumsum((hi - lo + 1 + 7) // 8)])
    from_gone_k = np.zeros(int(offset[-1]), dtype=np.uint8)
    from_gone_g = np.zeros(int(offset[-1]), dtype=np.uint8)
    for u, (g, s, is_prot) in enumerate(zip(groups, sizes, unit_prot)):
        lo_u, hi_u = int(lo[u]), int(hi[u])
        val = float(v[g].sum())
        new_keep = np.full(top + 1, neg)
        new_gone = np.full(top + 1, neg)
        row = slice(int(offset[u]), int(offset[u + 1]))
        a = max(lo_u, s)  # keeping this unit needs s tokens
        if a <= hi_u:
            pk, pg = keep[a - s: hi_u - s + 1], gone[a - s: hi_u - s + 1]
            src = pg > pk
            new_keep[a: hi_u + 1] = np.where(src, pg, pk) + val
            bits = np.zeros(hi_u - lo_u + 1, dtype=bool)
            bits[a - lo_u:] = src
            from_gone_k[row] = np.packbits(bits)
        if not is_prot:
            open_run = keep[lo_u: hi_u + 1] - gap_cost
            stay = gone[lo_u: hi_u + 1]
            src = stay >= open_run
            new_gone[lo_u: hi_u + 1] = np.where(src, stay, open_run)
            from_gone_g[row] = np.packbits(src)
        keep, gone = new_keep, new_gone

    def bit(table: np.ndarray, u: int, c: int) -> bool:
        j = c - int(lo[u])
        return bool((table[int(offset[u]) + (j >> 3)] >> (7 - (j & 7))) & 1)

    c = top
    state_gone = bool(gone[c] > keep[c])
    kept: list[int] = []
    for u in range(len(groups) - 1, -1, -1):
        if state_gone:
            state_gone = bit(from_gone_g, u, c)
        else:
            kept.extend(groups[u])
            state_gone = bit(from_gone_k, u, c)
            c -= sizes[u]
    return sorted(kept)


def removed_runs(kept: list[int], n: int) -> int:
    """Number of maximal runs of removed token indices in 0..n-1 given the kept ones."""
    mask = np.zeros(n, dtype=bool)
    mask[list(kept)] = True
    removed = ~mask
    return int(removed[0]) + int(np.sum(removed[1:] & ~removed[:-1])) if n else 0
