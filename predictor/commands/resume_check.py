"""What `predictor predict` / `prune` can tell about an existing output before loading the LM (~20 s):
that it was written with other settings (refused at once), or that every input chain is already done
(nothing to load). The LM fingerprint is still checked after the load, by the resumable writer."""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..jsonl_io import check_settings


def expected_scorer_name(args: argparse.Namespace) -> str:
    """The name `RankPredictor.load` will give the predictor these arguments name (stored as "scorer")."""
    from ..scorers.learned import pretrained_dir

    if args.scorer:
        return args.scorer
    return Path(args.predictor).name if args.predictor else pretrained_dir().name


def _complete_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of every complete JSON-object line (a cut or bad line is left to the writer)."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip() or not raw.endswith(b"\n"):
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and "id" in obj:
                yield lineno, obj


def done_ids_matching(out: Path, partial: Path, match: dict[str, Any]) -> dict[str, str | None]:
    """{id: stored chain_hash (None if absent)} of the records already written to OUT.partial (else OUT);
    ValueError naming OUT, the line and the field when a record was written with other settings than `match`."""
    src = partial if partial.exists() else out
    done: dict[str, str | None] = {}
    if not src.exists():
        return done
    for lineno, obj in _complete_records(src):
        check_settings(f"{out}:{lineno}", obj, match, f"delete {out} (and {partial.name})")
        done[str(obj["id"])] = obj.get("chain_hash")
    return done
