"""Exact greedy labels for states a predictor reaches by its own pruning (the fix for `refresh`).

`refresh` re-scores the survivors of the predictor's own deletions, but training states
(`training_data.state_targets`) are the survivors of *greedy's* deletions: the predictor never sees
the states it creates. Here a predictor deletes the `fraction` of a chain's tokens it ranks lowest
(one pass), and the exact greedy search runs from that state (its survivors: about fraction^3 of a
full chain's cost at fraction 0.5, ~1/8). Training on such states is DAgger's remedy for covariate
shift (Ross, Gordon & Bagnell, AISTATS 2011): learn on the distribution the policy itself visits.

A state record is a ranked record of the survivors (reasoning_ids, tokens, order, ranks, trajectory
refer to the m survivors) of the parent chain (question, reasoning, answer, prompt_ids, answer_ids of
the parent) plus `parent_id`, `kept` (the survivors' indices in the parent), `fraction` and
`policy` (the predictor that pruned); its id is "<parent id>@<policy>:<fraction>".
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .greedy import greedy_layout
from .layout import Layout
from .ranked import ranked_record, record_chain


def state_id(parent_id: str, policy: str, fraction: float) -> str:
    return f"{parent_id}@{policy}:{fraction:g}"


def policy_kept(rank_predictor, record: Mapping[str, Any], fraction: float) -> list[int]:
    """Sorted indices the predictor keeps after deleting its round(fraction * n) lowest-ranked tokens."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    ranks = np.asarray(rank_predictor.predict_ranks(record_chain(record)))
    k = int(round(fraction * len(ranks)))
    return sorted(int(i) for i in np.flatnonzero(ranks > k))


def label_state(lm, record: Mapping[str, Any], kept: Sequence[int], fraction: float, policy: str,
                objective: str = "joint") -> dict[str, Any]:
    """Run the exact greedy search on the parent chain restricted to `kept`; returns the state record."""
    parent = Layout(list(record["prompt_ids"]), list(record["reasoning_ids"]), list(record["answer_ids"]))
    lay = Layout(parent.prompt_ids, [parent.reasoning_ids[i] for i in kept], parent.answer_ids)
    res = greedy_layout(lm, lay, objective)
    chain = record_chain(record)
    rec = ranked_record(chain, res, lm.fingerprint, objective, 1, lm.tokenizer, device=lm.device.type)
    rec.update(id=state_id(str(record["id"]), policy, fraction), parent_id=str(record["id"]), kept=list(kept),
               fraction=float(fraction), policy=policy)
    return rec


def validate_state(rec: Mapping[str, Any], parent: Mapping[str, Any], where: str) -> None:
    """The state's survivors must be the parent's tokens at `kept` (ChainFormatError naming `where`)."""
    from .chains import ChainFormatError

    kept = rec.get("kept")
    n = len(parent["reasoning_ids"])
    if not isinstance(kept, list) or sorted(set(kept)) != kept or not kept or kept[0] < 0 or kept[-1] >= n:
        raise ChainFormatError(f"{where}: field 'kept' must be sorted unique indices in [0, {n})")
    if [parent["reasoning_ids"][i] for i in kept] != list(rec["reasoning_ids"]):
        raise ChainFormatError(f"{where}: field 'reasoning_ids' is not the parent's tokens at 'kept'")
