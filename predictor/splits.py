"""Train / validation / test splits by chain id (never by token), seeded and order-independent.

Chains are sorted by sha256(f"{seed}:{id}") and cut into consecutive blocks of the requested
fractions, so the split depends only on the set of ids and the seed (not on file order).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

SPLITS = ("train", "val", "test")


def _key(seed: int, cid: str) -> str:
    return hashlib.sha256(f"{seed}:{cid}".encode()).hexdigest()


def split_ids(ids: Iterable[str], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
              seed: int = 0) -> dict[str, list[str]]:
    """{"train": [...], "val": [...], "test": [...]} of chain ids (each list in input order).

    With at least 3 chains and positive fractions, val and test get at least one chain each.
    """
    ids = [str(i) for i in ids]
    if len(set(ids)) != len(ids):
        raise ValueError("chain ids must be unique to split by chain")
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers, got {fractions}")
    total = sum(fractions)
    n = len(ids)
    n_val = round(n * fractions[1] / total)
    n_test = round(n * fractions[2] / total)
    if n >= 3:
        n_val = max(n_val, 1 if fractions[1] > 0 else 0)
        n_test = max(n_test, 1 if fractions[2] > 0 else 0)
    n_train = max(n - n_val - n_test, 0)
    ranked = sorted(ids, key=lambda c: _key(seed, c))
    which = {c: "train" for c in ranked[:n_train]}
    which.update({c: "val" for c in ranked[n_train:n_train + n_val]})
    which.update({c: "test" for c in ranked[n_train + n_val:]})
    return {s: [c for c in ids if which[c] == s] for s in SPLITS}
