"""Output parts of the Ray engine: atomic JSONL files of finished records, and their final merge.

The driver writes finished records into PARTS_DIR/part-*.jsonl, each file whole or absent (temp file +
rename), so a kill never leaves a truncated line. The merge joins the records of an existing OUT and
of every part: de-duplicated by the job's key, refusing two different records under one key or two
settings in one file, ordered like the input (as `merge-ranked`: by objective, then input order).
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# fields that legitimately differ between two runs of the same chain (wall-clock timing)
TIMING_FIELDS = ("seconds",)


def part_files(parts_dir: Path) -> list[Path]:
    return sorted(parts_dir.glob("part-*.jsonl")) if parts_dir.is_dir() else []


def iter_output_records(out: Path, parts_dir: Path, key: tuple[str, ...] = ("id",)
                        ) -> Iterator[tuple[dict[str, Any], str]]:
    """(record, "file:line") of an existing OUT, then of every part, read by `jsonl_io.OutputRecords`
    (as the resumable writer reads them; key: the job's key fields, which every record must have).
    Bad lines raise ValueError naming file:line, except a cut last line of OUT (a killed `--engine
    local` labeler appends to OUT): it is left out, and the merge's rewrite of OUT drops it. Parts are
    written whole, so a cut line in one is an error."""
    from ..jsonl_io import OutputRecords

    for path in ([out] if out.is_file() else []) + part_files(parts_dir):
        for lineno, rec in OutputRecords(path, required=key, cut_ok=path == out):
            yield rec, f"{path}:{lineno}"


class PartWriter:
    """Buffer finished records; `flush` writes them as one new part file (atomic).

    A flush happens every `every_s` seconds or `max_records` records (`add` checks), and on `flush()`:
    a killed driver loses at most the records of the last `every_s` seconds."""

    def __init__(self, parts_dir: Path, every_s: float = 10.0, max_records: int = 1000):
        self.dir, self.every_s, self.max_records = parts_dir, every_s, max_records
        self.buffer: list[dict[str, Any]] = []
        self.last = -float("inf")  # the first record is written at once
        self.written = 0

    def add(self, record: dict[str, Any]) -> None:
        self.buffer.append(record)
        if len(self.buffer) >= self.max_records or time.monotonic() - self.last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        from ..jsonl_io import atomic_write_jsonl

        self.last = time.monotonic()
        if not self.buffer:
            return
        atomic_write_jsonl(self.dir / f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.jsonl", self.buffer)
        self.written += len(self.buffer)
        self.buffer = []


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    strip = lambda r: {k: v for k, v in r.items() if k not in TIMING_FIELDS}
    return strip(a) == strip(b)


def merge_records(records: Iterator[tuple[dict[str, Any], str]], key: tuple[str, ...], settings_fields: tuple[str, ...],
                  order: dict[str, int], order_source: str, ranked: bool) -> list[dict[str, Any]]:
    """The merged output: one record per key, ordered by (objective,) input index.

    records: (record, where) pairs; key: fields that identify a record; settings_fields: fields that
    must be equal in all records; order: chain id -> input index; ranked: validate as ranked records
    (`ranked.validate_ranked`) and refuse two answer-end tokens (two layouts), like `merge-ranked`.
    Raises ValueError naming the file and line of a conflict."""
    from ..jsonl_io import setting_difference
    from ..ranked import validate_ranked

    merged: dict[tuple[str, ...], tuple[dict[str, Any], str]] = {}
    first_settings: tuple[Any, str] | None = None
    eos_from: dict[int, str] = {}
    for rec, where in records:
        if ranked:
            validate_ranked(rec, where)
            eos_from.setdefault(rec["answer_ids"][-1], where)
        settings = tuple(rec.get(f) for f in settings_fields)
        if first_settings is None:
            first_settings = (settings, where)
        elif settings != first_settings[0]:
            diff = next(f for f, a, b in zip(settings_fields, settings, first_settings[0]) if a != b)
            name, have, want = setting_difference(diff, rec.get(diff), dict(zip(settings_fields, first_settings[0]))[diff])
            raise ValueError(f"{where}: field '{name}' is {have} but {first_settings[1]} has {want}; "
                             "outputs of different settings cannot be merged")
        k = tuple(str(rec.get(f)) for f in key)
        if k in merged:
            if not _same(merged[k][0], rec):
                raise ValueError(f"{where}: record {k} differs from the one in {merged[k][1]}; refusing to "
                                 "pick one (were they made with different code or settings?)")
            continue
        if str(rec["id"]) not in order:
            raise ValueError(f"{where}: id {rec['id']!r} is not in {order_source}")
        merged[k] = (rec, where)
    if len(eos_from) > 1:
        raise ValueError("the records end their answers with different tokens: "
                         + "; ".join(f"{t} first in {w}" for t, w in sorted(eos_from.items()))
                         + " (a tokenizer changed between labeling runs); merge each layout separately")
    recs = [r for r, _ in merged.values()]
    if ranked:
        return sorted(recs, key=lambda r: (r["objective"], order[str(r["id"])]))
    return sorted(recs, key=lambda r: order[str(r["id"])])
