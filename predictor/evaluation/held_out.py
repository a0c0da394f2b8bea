"""Which chains can measure a predictor: its stored splits (`predictor.json`) and the chains it saw."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def stored_split_ids(metadata: Mapping[str, Any], which: str = "test") -> list[str] | None:
    """Chain ids of one split ("train", "val", "test") stored in a predictor's metadata, in its one
    layout {"split": {"train": [...], "val": [...], "test": [...]}} (`training.run_training` writes
    it); None when it stores none."""
    split = metadata.get("split")
    ids = split.get(which) if isinstance(split, Mapping) else None
    return [str(i) for i in ids] if isinstance(ids, (list, tuple)) else None


def seen_ids(metadata: Mapping[str, Any], with_val: bool = True) -> set[str]:
    """Ids a predictor trained on (its stored train split and extra training chains) and, with_val,
    was selected on (its validation split): the chains that cannot measure it."""
    parts = ("train", "val") if with_val else ("train",)
    seen = {i for part in parts for i in (stored_split_ids(metadata, part) or [])}
    return seen | {str(i) for i in metadata.get("extra_train_ids") or []}


def split_records(records: Sequence[dict], metadata: Mapping[str, Any] | None,
                  unseen: bool = False) -> tuple[list[dict], list[dict], str]:
    """(test, train, description): test = the predictor's held-out ids; train = its stored training ids,
    else every non-test record.

    Without split ids in the metadata every record is a test record (and the description says so),
    which is only right for data the predictor never saw. unseen=True: test = every record whose id
    is not among the ids the predictor trained or was selected on (its train and validation splits
    and its extra training chains): for data from elsewhere (another style, a user's own labels);
    train is then empty.
    """
    if unseen:
        held = seen_ids(metadata or {})
        test = [r for r in records if str(r["id"]) not in held]
        return test, [], (f"every record the predictor never trained or was selected on ({len(test)} of "
                          f"{len(records)}; {len(records) - len(test)} share an id with its training or validation "
                          "chains and are left out)")
    ids = stored_split_ids(metadata or {}, "test")
    if ids is None:
        return list(records), [], "all records (the predictor stores no test split)"
    keep = set(ids)
    test = [r for r in records if str(r["id"]) in keep]
    train_ids = stored_split_ids(metadata or {}, "train")
    train = [r for r in records if str(r["id"]) not in keep and (train_ids is None or str(r["id"]) in set(train_ids))]
    return test, train, f"the predictor's test split ({len(test)} of {len(ids)} ids found in the data)"
