"""Chain domains (GSM8K, AQuA-RAT, StrategyQA, ...) and per-domain held-out scores.

A chain's domain is its record's `domain` field when it has one, else the prefix of its id before the
first "-" (`gsm8k-train-12` -> "gsm8k", `aqua-test-238` -> "aqua"; ids without "-" are "other").
Training mixes domains (`train --domain-data`) but reports each domain's validation and test chains on
their own: a mean over all held-out chains would let the largest domain hide the others.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

OTHER = "other"


def chain_domain(record_or_id: Mapping[str, Any] | str) -> str:
    """The domain of a ranked record (its `domain` field, else its id's prefix) or of a chain id."""
    if isinstance(record_or_id, Mapping):
        dom = record_or_id.get("domain")
        if isinstance(dom, str) and dom:
            return dom
        record_or_id = str(record_or_id["id"])
    head, sep, _ = str(record_or_id).partition("-")
    return head if sep and head else OTHER


def group_by_domain(ids: Iterable[str], domain_of: Callable[[str], str] = chain_domain) -> dict[str, list[int]]:
    """{domain: positions in `ids`} in first-seen order of the domains."""
    out: dict[str, list[int]] = {}
    for k, cid in enumerate(ids):
        out.setdefault(domain_of(cid), []).append(k)
    return out


def per_domain(values: Sequence[float] | np.ndarray, ids: Sequence[str],
               summarize: Callable[[np.ndarray], dict[str, Any]],
               domain_of: Callable[[str], str] = chain_domain) -> dict[str, dict[str, Any]]:
    """{domain: summarize(per-chain values of that domain's chains)}; values [chains] align with ids.

    Raises ValueError when the lengths differ."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) != len(ids):
        raise ValueError(f"{len(values)} values for {len(ids)} chain ids")
    return {d: summarize(values[pos]) for d, pos in group_by_domain(ids, domain_of).items()}
