"""What `predictor predict` / `prune` can tell about an existing output before loading the LM (~20 s):
that it was written with other settings (refused at once), or that every input chain is already done
(nothing to load). The LM fingerprint is still checked after the load, by the resumable writer."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..jsonl_io import OutputRecords, SettingWordsFn, check_settings


def expected_scorer_name(args: argparse.Namespace) -> str:
    """The name `RankPredictor.load` will give the predictor these arguments name (stored as "scorer")."""
    from ..predictor_dir import default_predictor_dir_for_model

    if args.scorer:
        return args.scorer
    if args.predictor:
        return Path(args.predictor).name
    return default_predictor_dir_for_model(getattr(args, "model", None)).name


def done_ids_matching(out: Path, partial: Path, match: dict[str, Any],
                      words: SettingWordsFn | None = None) -> tuple[dict[str, str | None], bool]:
    """({id: stored chain_hash (None if absent)}, clean) of the records already written to OUT.partial
    (else OUT), read as the resumable writer reads them (`jsonl_io.OutputRecords`, errors naming OUT);
    clean: False when the file ends in a cut line or a record without its "\n" (for the writer to
    repair). ValueError naming OUT and the line for a bad line (other than a cut last one), or a
    record written with other settings than `match` (naming the field; and the option, with `words`)."""
    src = partial if partial.exists() else out
    done: dict[str, str | None] = {}
    if not src.exists():
        return done, True
    records = OutputRecords(src, name=out)
    for lineno, obj in records:
        check_settings(f"{out}:{lineno}", obj, match, f"delete {out} (and {partial.name})", words)
        done[str(obj["id"])] = obj.get("chain_hash")
    return done, records.cut_at is None and not records.unterminated
