"""Exact greedy labels for states a predictor reaches by its own pruning.

`refresh` re-scores the survivors of the predictor's own deletions, but training states
(`training_data.state_targets`) are the survivors of *greedy's* deletions: the predictor never sees
the states it creates. Here a predictor deletes the `fraction` of a chain's tokens it ranks lowest
(one pass), and the exact greedy search runs from that state (m = (1 - fraction) n survivors: the
search costs ~m^3, (1 - fraction)^3 of the full chain's in tokens, plus the fixed prompt work).
Training on such states is DAgger's remedy for covariate shift (Ross, Gordon & Bagnell, AISTATS
2011); measured on SmolLM2 the shift is not what limits refresh (docs/quality.md, section 4).

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


def policy_name(rank_predictor) -> str:
    """A stable name for the predictor that prunes: its directory name plus a hash of its
    predictor.json (two predictors saved as OUT/predictor get different names); a scorer's name."""
    import hashlib
    import json

    meta = getattr(rank_predictor.scorer, "metadata", None)
    if not meta:
        return rank_predictor.scorer.name
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{rank_predictor.name}-{digest}"


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
    if (not isinstance(kept, list) or not kept or not all(isinstance(i, int) and not isinstance(i, bool) for i in kept)
            or sorted(set(kept)) != kept or kept[0] < 0 or kept[-1] >= n):
        raise ChainFormatError(f"{where}: field 'kept' must be sorted unique indices in [0, {n})")
    if [parent["reasoning_ids"][i] for i in kept] != list(rec["reasoning_ids"]):
        raise ChainFormatError(f"{where}: field 'reasoning_ids' is not the parent's tokens at 'kept'")
    f = rec.get("fraction")
    if not isinstance(f, (int, float)) or not 0 < f < 1:
        raise ChainFormatError(f"{where}: field 'fraction' must be a number in (0, 1)")
    if rec.get("lm") != parent.get("lm"):
        raise ChainFormatError(f"{where}: field 'lm' ({rec.get('lm')}) differs from the parent's ({parent.get('lm')})")
