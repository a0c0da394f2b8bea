"""What `predictor predict` / `prune` can tell about an existing output before loading the LM (~20 s):
that it was written with other settings (refused at once), or that every input chain is already done
(nothing to load). The LM fingerprint is still checked after the load, by the resumable writer."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..jsonl_io import OutputRecords, SettingWordsFn, check_settings


def expected_predictor_dir(args: argparse.Namespace) -> Path | None:
    """The predictor directory `RankPredictor.load` will load for these arguments (a shipped name, "learned"
    included, resolved as it resolves them); None for a registered scorer."""
    from ..predictor_dir import default_predictor_dir_for_model, named_predictor_dir
    from ..scorers import DIRECTORY_SCORERS, SCORERS

    name = args.scorer or args.predictor
    if name in SCORERS and name not in DIRECTORY_SCORERS:
        return None
    if args.predictor:
        return named_predictor_dir(args.predictor) or Path(args.predictor)
    return default_predictor_dir_for_model(getattr(args, "model", None))


def expected_scorer_name(args: argparse.Namespace) -> str:
    """The name `RankPredictor.load` will give the predictor these arguments name (stored as "scorer")."""
    path = expected_predictor_dir(args)
    return (args.scorer or args.predictor) if path is None else path.name


def expected_prune_defaults(args: argparse.Namespace) -> dict[str, float]:
    """The `prune_defaults` of the predictor these arguments name, read from its predictor.json ({} for a
    scorer); PredictorLoadError for a directory without a readable one."""
    from ..predictor_dir import prune_defaults_of, read_metadata

    path = expected_predictor_dir(args)
    return {} if path is None else prune_defaults_of(read_metadata(path), path)


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
