"""Crash-safe JSONL output: resumable line-by-line appends and atomic whole-file writes."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class ResumableJsonlWriter:
    """Append one JSON object per line; on reopen, skip ids already written.

    A kill can only ever leave a partial last line; reopening cuts it off, so the file never holds a
    duplicated or truncated record. Each record is flushed and fsynced before `write` returns.
    """

    def __init__(self, path: str | Path, key: str = "id"):
        self.path = Path(path)
        self.key = key
        self.done: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        good_end = 0
        if self.path.exists():
            with self.path.open("rb") as f:
                data = f.read()
            pos = 0
            for raw in data.splitlines(keepends=True):
                if not raw.endswith(b"\n"):
                    break  # partial last line from a crash
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError:
                    break
                pos += len(raw)
                good_end = pos
                if isinstance(obj, dict) and key in obj:
                    self.done.add(str(obj[key]))
            if good_end < len(data):
                with self.path.open("r+b") as f:
                    f.truncate(good_end)
        self._f = self.path.open("ab")

    def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        self._f.write(line)
        self._f.flush()
        os.fsync(self._f.fileno())
        self.done.add(str(record[self.key]))

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "ResumableJsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
