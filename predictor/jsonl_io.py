"""Crash-safe JSONL output: resumable line-by-line appends and atomic whole-file writes."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


class ResumableJsonlWriter:
    """Append one JSON object per line; on reopen, skip keys already written.

    A kill can only ever leave a partial last line; reopening cuts it off, so the file never holds a
    duplicated or truncated record. A bad line anywhere else is an error (naming file:line), never
    silently dropped with the records after it. Each record is flushed and fsynced before `write`
    returns.

    key: the field (or tuple of fields) that identifies a finished record; `done` holds str ids for
    one field, tuples of str for several.
    match: fields every existing record must have with these values (the run's settings: LM, objective,
    budget, ...); a record written with other settings raises ValueError instead of being resumed.
    content: record -> the content hash of the chain it was written for (`chains.chain_hash`; None
    when unknown); `check_content` then refuses to resume a record whose input chain changed.
    """

    def __init__(self, path: str | Path, key: str | tuple[str, ...] = "id", match: dict[str, Any] | None = None,
                 content: Callable[[dict[str, Any]], str | None] | None = None):
        self.path = Path(path)
        self.key = key
        self.match = dict(match or {})
        self.content = content
        self.done: set[Any] = set()
        self.hashes: dict[Any, tuple[int, str | None]] = {}  # key -> (line, content hash)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._scan()
        self._f = self.path.open("ab")

    def _key_of(self, obj: dict[str, Any]) -> Any:
        if isinstance(self.key, str):
            return str(obj[self.key])
        return tuple(str(obj.get(k)) for k in self.key)

    def _scan(self) -> None:
        with self.path.open("rb") as f:
            data = f.read()
        parts = data.split(b"\n")  # "\n" only, as every reader of this package splits lines
        lines = [x + b"\n" for x in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
        good_end = 0
        for lineno, raw in enumerate(lines, 1):
            last = lineno == len(lines)
            if not raw.strip():
                good_end += len(raw)
                continue
            try:
                obj = json.loads(raw) if raw.endswith(b"\n") else None
            except json.JSONDecodeError:
                obj = None
            if not isinstance(obj, dict) or (isinstance(self.key, str) and self.key not in obj):
                if last:
                    break  # a line cut by a kill: dropped below
                raise ValueError(f"{self.path}:{lineno}: not a complete record of this tool's output; "
                                 "fix or remove the line (or use another output path)")
            check_settings(f"{self.path}:{lineno}", obj, self.match, f"delete {self.path}")
            good_end += len(raw)
            self.done.add(self._key_of(obj))
            if self.content is not None:
                self.hashes[self._key_of(obj)] = (lineno, self.content(obj))
        if good_end < len(data):
            with self.path.open("r+b") as f:
                f.truncate(good_end)

    def check_content(self, key: Any, content_hash: str) -> None:
        """Raise ValueError (naming file:line) if the finished record `key` was written for a chain
        with other content than `content_hash` (or with no content hash at all)."""
        if key not in self.hashes:
            return
        lineno, old = self.hashes[key]
        check_content_hash(f"{self.path}:{lineno}", key, old, content_hash, f"delete {self.path}")

    def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        self._f.write(line)
        self._f.flush()
        os.fsync(self._f.fileno())
        self.done.add(self._key_of(record))

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "ResumableJsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_settings(where: str, record: dict[str, Any], match: dict[str, Any], remedy: str | None = None) -> None:
    """Raise ValueError if a finished record (at `where`, "file:line") was written with settings other
    than `match` (field -> value). remedy: what to delete to start over ("delete OUT"), if anything."""
    for field, want in match.items():
        if record.get(field) != want:
            raise ValueError(f"{where}: field '{field}' is {record.get(field)!r} but this run uses {want!r}; "
                             "outputs of different settings cannot be mixed: use another output path"
                             + (f", or {remedy} to start over" if remedy else ""))


def check_content_hash(where: str, key: Any, old: str | None, new: str, remedy: str) -> None:
    """Raise ValueError if a finished record (at `where`, "file:line") was written for a chain with
    content hash `old` (None: the record has none) and the input chain now hashes to `new`.
    remedy: what to delete to redo every chain ("delete OUT")."""
    if old == new:
        return
    what = "has no content hash" if old is None else f"was written for other content (hash {old}, now {new})"
    raise ValueError(f"{where}: the record of {key!r} {what}: the input chain changed since it was written; "
                     f"{remedy} to redo every chain, or use another output path")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a whole file via a fsynced temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; outputs are meant to be readable like open()'s
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Atomically write records as JSON lines."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def read_json_object(path: str | Path, error: type[Exception], missing: str) -> dict[str, Any]:
    """Parse a JSON file that must hold an object; `error(...)` names the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {missing}")
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise error(f"{path}: expected a JSON object")
    return obj
