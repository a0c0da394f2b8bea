"""Ranked records -> per-chain feature matrices and normalized-rank targets, with pruned-state augmentation.

A greedy order labels every intermediate state exactly: after deleting the first k tokens of
`order`, greedy continues with the rest of `order`, so the survivors' ranks among themselves are
exact greedy ranks of that smaller chain. For each state fraction f we observe the chain with
kept = sorted(order[k:]), k = round(f * n), and use the survivors' normalized ranks as targets.
These states teach the regressor what refresh (re-scoring as tokens go) will show it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .ranked import record_chain
from .ranks import normalized_ranks

FEATURE_GROUP = 32  # chains handed to the feature cache at once (their misses share forward passes)


@dataclass
class StateExample:
    """One (chain, pruned state): X float32 [m, F] features of the m survivors, y [m] their normalized ranks."""

    chain_id: str
    fraction: float
    kept: list[int]  # original indices of the survivors (sorted)
    X: np.ndarray
    y: np.ndarray
    source: str = "greedy"  # "greedy": survivors of greedy's own deletions; "policy": of a predictor's


@dataclass
class TrainingData:
    """Feature columns and every (chain, state) example built by `build_training_data`."""

    feature_names: list[str]
    feature_groups: list[str]
    examples: list[StateExample] = field(default_factory=list)

    def _picked(self, ids: Iterable[str], fractions: Sequence[float] | None) -> list[StateExample]:
        ids = set(ids)
        return [e for e in self.examples if e.chain_id in ids and
                (fractions is None or (e.source == "greedy" and any(abs(e.fraction - f) < 1e-9 for f in fractions)))]

    def select(self, ids: Iterable[str], fractions: Sequence[float] | None = (0.0,)
               ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(X, y) lists of the examples of these chains at these greedy-state fractions (None: every state,
        policy states included), in the order of `examples`."""
        ex = self._picked(ids, fractions)
        return [e.X for e in ex], [e.y for e in ex]

    def select_ids(self, ids: Iterable[str], fractions: Sequence[float] | None = (0.0,)) -> list[str]:
        """The chain id of each example `select(ids, fractions)` returns, in the same order."""
        return [e.chain_id for e in self._picked(ids, fractions)]


def state_targets(order: Sequence[int], fraction: float) -> tuple[list[int], np.ndarray] | None:
    """(kept indices sorted, normalized survivor ranks [m]) after deleting round(f * n) tokens; None if m < 2."""
    n = len(order)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"state fractions must be in [0, 1), got {fraction}")
    k = int(round(fraction * n))
    rest = list(order[k:])
    m = len(rest)
    if m < 2 and fraction > 0:
        return None
    kept = sorted(rest)
    step = {tok: s for s, tok in enumerate(rest, 1)}  # survivor ranks: 1 = deleted first among survivors
    return kept, normalized_ranks(np.array([step[i] for i in kept]))


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_records_match_lm(records: Sequence[dict[str, Any]], lm, strict: bool = True) -> None:
    """Raise ValueError if records were labeled with another LM (fingerprint or tokenization differ)."""
    from .layout import encode_chain

    for rec in records:
        if strict and rec.get("lm") != lm.fingerprint:
            raise ValueError(f"chain {rec['id']!r} was labeled with LM fingerprint {rec.get('lm')} but the LM given "
                             f"is {lm.name!r} ({lm.fingerprint}); pass the labeling LM with --model")
        lay = encode_chain(lm.tokenizer, record_chain(rec), lm.max_length)
        if lay.reasoning_ids != list(rec["reasoning_ids"]):
            raise ValueError(f"chain {rec['id']!r}: reasoning_ids differ from this LM's tokenization of the reasoning")


def build_training_data(records: Sequence[dict[str, Any]], lm, spec=None, states: Sequence[float] = (0.0,),
                        state_ids: Iterable[str] | None = None, cache=None, progress: bool = True,
                        policy_states: Sequence[dict[str, Any]] = ()) -> TrainingData:
    """Features (cached; one forward pass per chain and state) and targets for every record.

    states: fractions of tokens already deleted; 0.0 (the full chain) is always included.
    state_ids: chains that get the extra states (default: all); the others only the full state.
    policy_states: state records of `policy_states.label_state` (a predictor's own pruned states,
    labeled exactly); each must have its parent among `records`; examples with source "policy".
    """
    from tqdm import tqdm

    from .feature_cache import FeatureCache
    from .features import FeatureSpec

    spec = spec or FeatureSpec()
    cache = cache if cache is not None else FeatureCache()
    fracs = sorted({0.0, *map(float, states)})
    extra = None if state_ids is None else set(state_ids)
    jobs = []
    for rec in records:
        for f in fracs:
            if f > 0 and extra is not None and rec["id"] not in extra:
                continue
            st = state_targets(rec["order"], f)
            if st is not None:
                jobs.append((rec, f, *st, "greedy"))
    from .policy_states import validate_state

    by_id = {str(r["id"]): r for r in records}
    for k, st in enumerate(policy_states):
        parent = by_id.get(str(st.get("parent_id")))
        if parent is None:
            raise ValueError(f"policy state {k + 1} ({st.get('id')!r}): parent chain {st.get('parent_id')!r} "
                             "is not among the training records")
        validate_state(st, parent, f"policy state {st.get('id')!r}")
        jobs.append((parent, float(st["fraction"]), list(st["kept"]), normalized_ranks(np.asarray(st["ranks"])),
                     "policy"))
    data: TrainingData | None = None
    bar = tqdm(total=len(jobs), desc="features", unit="pass", disable=not progress, dynamic_ncols=True)
    tables = []
    for a in range(0, len(jobs), FEATURE_GROUP):  # a group's misses share forward passes
        group = jobs[a:a + FEATURE_GROUP]
        tables += cache.features_for_many(lm, [record_chain(j[0]) for j in group], spec,
                                          [None if len(j[2]) == len(j[0]["order"]) else j[2] for j in group])
        bar.update(len(group))
        bar.set_postfix(cached=cache.hits, computed=cache.misses)
    bar.close()
    for (rec, f, kept, y, source), table in zip(jobs, tables):
        if table.n != len(kept):
            raise ValueError(f"chain {rec['id']!r}: features have {table.n} rows for {len(kept)} tokens "
                             "(labels from another tokenizer or layout?)")
        if data is None:
            data = TrainingData(list(table.names), list(table.groups))
        elif table.names != data.feature_names:
            raise RuntimeError("feature columns differ between chains (mixed feature caches?)")
        data.examples.append(StateExample(str(rec["id"]), f, kept, np.asarray(table.values, np.float32), y, source))
    if data is None:
        raise ValueError("no chains to featurize")
    return data
