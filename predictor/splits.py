"""Train / validation / test splits by chain id (never by token), seeded and stable as data grows.

Each chain id maps to u = sha256(f"{seed}:{id}") read as a number in [0, 1), and goes to train when
u < f_train, to val when u < f_train + f_val, else to test. A chain's split therefore depends only on
its id and the seed: adding chains to a data set never moves a test chain into training, so held-out
numbers of predictors trained at different data sizes stay comparable.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

SPLITS = ("train", "val", "test")


def hash_unit(seed: int, cid: str) -> float:
    """The chain's position in [0, 1) under this seed."""
    return int(hashlib.sha256(f"{seed}:{cid}".encode()).hexdigest()[:15], 16) / float(16 ** 15)


def split_ids(ids: Iterable[str], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
              seed: int = 0) -> dict[str, list[str]]:
    """{"train": [...], "val": [...], "test": [...]} of chain ids (each list in input order).

    With at least 3 chains, a split with a positive fraction that the thresholds leave empty takes
    the training chain nearest its threshold, so val and test are never empty.
    """
    ids = [str(i) for i in ids]
    if len(set(ids)) != len(ids):
        raise ValueError("chain ids must be unique to split by chain")
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers, got {fractions}")
    total = sum(fractions)
    cut_train = fractions[0] / total
    cut_val = (fractions[0] + fractions[1]) / total
    u = {c: hash_unit(seed, c) for c in ids}
    which = {c: "train" if u[c] < cut_train else "val" if u[c] < cut_val else "test" for c in ids}
    if len(ids) >= 3:
        for part, frac in (("test", fractions[2]), ("val", fractions[1])):
            if frac > 0 and part not in which.values():
                train = [c for c in ids if which[c] == "train"]
                if train:
                    which[max(train, key=lambda c: u[c])] = part
    return {s: [c for c in ids if which[c] == s] for s in SPLITS}
