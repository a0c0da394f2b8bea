"""Crash-safe JSONL output: the one reader of existing output files (resume, merge), resumable line-by-line
appends and atomic whole-file writes."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from .chains import json_error_text

_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


class SettingWords(NamedTuple):
    """A differing setting in a command's options: what the file was written with ("--keep 0.5"), what
    this run asks ("--keep 0.3"), and how to resume the file ("pass --keep 0.5"; None when no option can)."""

    have: str
    want: str
    resume: str | None


# (the differing field as `setting_difference` names it, the record, the run's settings) -> its words, or None
SettingWordsFn = Callable[[str, Mapping[str, Any], Mapping[str, Any]], SettingWords | None]


class ResumableJsonlWriter:
    """Append one JSON object per line; on reopen, skip keys already written.

    The existing file is read with `OutputRecords` (as every reader of existing output): a kill can
    only ever leave a cut last line, which reopening cuts off, so the file never holds a duplicated or
    truncated record. A bad line anywhere else is an error (naming file:line), never silently dropped
    with the records after it. Each record is flushed and fsynced before `write` returns.

    key: the field (or tuple of fields) that identifies a finished record; `done` holds str ids for
    one field, tuples of str for several.
    match: fields every existing record must have with these values (the run's settings: LM, objective,
    budget, ...); a record written with other settings raises ValueError instead of being resumed.
    content: record -> the content hash of the chain it was written for (`chains.chain_hash`; None
    when unknown); `check_content` then refuses to resume a record whose input chain changed.
    words: says a differing setting in the command's options (see `check_settings`).
    """

    def __init__(self, path: str | Path, key: str | tuple[str, ...] = "id", match: dict[str, Any] | None = None,
                 content: Callable[[dict[str, Any]], str | None] | None = None, words: SettingWordsFn | None = None):
        self.path = Path(path)
        self.key = key
        self.match = dict(match or {})
        self.content = content
        self.words = words
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
        records = OutputRecords(self.path, required=(self.key,) if isinstance(self.key, str) else self.key)
        for lineno, obj in records:
            check_settings(f"{self.path}:{lineno}", obj, self.match, f"delete {self.path}", self.words)
            self.done.add(self._key_of(obj))
            if self.content is not None:
                self.hashes[self._key_of(obj)] = (lineno, self.content(obj))
        if records.cut_at is not None:  # a line cut by a kill: cut it off, its record is redone
            with self.path.open("r+b") as f:
                f.truncate(records.cut_at)
        elif records.unterminated:  # a complete last record without its "\n": end it before appending
            with self.path.open("ab") as f:
                f.write(b"\n")

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


class OutputRecords:
    """The records of an existing output JSONL file (one this tool wrote, or one a user brings to resume
    or merge): the one reader of the resumable writer, the before-load resume check of predict/prune
    and the Ray engine's merge, so that they accept and refuse the same files.

    Iterating yields (line number, record dict). Lines are split on b"\n" only, as every reader of this
    package splits them (a raw "\r" stays inside its line: one bad line, the numbers of the lines after
    it unshifted; a "\r\n" ending is JSON whitespace); a UTF-8 byte-order mark at the start is
    dropped; blank lines are skipped.

    A cut last line (it lacks its "\n" and is no complete record: what a killed appending writer
    leaves) is skipped when `cut_ok`, and `cut_at` then holds the byte offset where it starts (the
    writer truncates the file there; a merge's rewrite drops it); without `cut_ok` (files written
    whole, by temp file + rename) it is an error. A complete last record without its "\n" is kept
    (`unterminated` is then True). Every other bad line raises ValueError naming `name`:line and the
    reason: not valid UTF-8 (with the byte of the line), invalid JSON (with the column), not a JSON
    object, or a `required` field missing.

    path: the file; required: fields every record must have; name: how errors name the file (default
    `path`; e.g. OUT when reading the scratch file OUT.partial that was copied from it).
    """

    def __init__(self, path: str | Path, required: Iterable[str] = ("id",), name: str | Path | None = None,
                 cut_ok: bool = True):
        self.path = Path(path)
        self.required = tuple(required)
        self.name = str(name if name is not None else path)
        self.cut_ok = cut_ok
        self.cut_at: int | None = None
        self.unterminated = False

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        self.cut_at, self.unterminated = None, False
        offset = 0
        with self.path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):  # binary files iterate on b"\n" only
                start, offset = offset, offset + len(raw)
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                obj, problem = self._parse(raw, self.required)
                ended = raw.endswith(b"\n")
                if problem is None:
                    self.unterminated = not ended
                    if obj is not None:
                        yield lineno, obj
                    continue
                # a line without its "\n" can only be the last one; what a killed writer of this tool's JSON
                # objects cut starts with "{" (anything else is someone else's text: refused, not truncated away)
                if not ended and self.cut_ok and raw.lstrip().startswith(b"{"):
                    self.cut_at = start
                    return
                raise ValueError(f"{self.name}:{lineno}: not a complete record of this tool's output ({problem}); "
                                 "fix or remove the line, or use another output path")

    @staticmethod
    def _parse(raw: bytes, required: tuple[str, ...]) -> tuple[dict[str, Any] | None, str | None]:
        """(record, None), (None, None) for a blank line, or (None, what is wrong)."""
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return None, f"not valid UTF-8: byte {e.start + 1} of the line"
        if not line.strip():
            return None, None
        try:
            obj = json.loads(line[:-1] if line.endswith("\n") else line)  # an error at the end: its column
        except json.JSONDecodeError as e:
            return None, f"invalid JSON: {json_error_text(e)}"
        if not isinstance(obj, dict):
            return None, f"a JSON {_JSON_TYPES.get(type(obj), type(obj).__name__)}, not an object"
        missing = next((k for k in required if k not in obj), None)
        if missing is not None:
            return None, f"no field '{missing}'"
        return obj, None


def check_settings(where: str, record: dict[str, Any], match: dict[str, Any], remedy: str | None = None,
                   words: SettingWordsFn | None = None) -> None:
    """Raise ValueError if a finished record (at `where`, "file:line") was written with settings other
    than `match` (field -> value), naming the stored field; with `words` (and words for that field) also
    the command's option, both values and the option that resumes the file. remedy: what to delete to
    start over ("delete OUT"), if anything."""
    for field, want in match.items():
        if record.get(field) != want:
            name, have, want = setting_difference(field, record.get(field), want)
            said = words(name, record, match) if words is not None else None
            if said is None:
                raise ValueError(f"{where}: field '{name}' is {have} but this run uses {want}; "
                                 "outputs of different settings cannot be mixed: use another output path"
                                 + (f", or {remedy} to start over" if remedy else ""))
            path = where.rsplit(":", 1)[0]
            raise ValueError(f"{where}: field '{name}' is {have} but this run uses {want}, i.e. {path} was written "
                             f"with {said.have} and this run asks {said.want}; outputs of different settings "
                             "cannot be mixed: " + (f"{said.resume} to resume it, " if said.resume else "")
                             + "use another --out" + (f", or {remedy} to start over" if remedy else ""))


_MISSING = object()


def setting_difference(field: str, have: Any, want: Any) -> tuple[str, str, str]:
    """(name, have, want) of the first difference between two values of a setting, descending into
    dicts ("settings.gap_cost"), the values as repr() ("missing" for an absent key), for messages."""
    while isinstance(have, dict) and isinstance(want, dict):
        key = next((k for k in [*want, *have] if have.get(k, _MISSING) != want.get(k, _MISSING)), None)
        if key is None:
            break
        field, have, want = f"{field}.{key}", have.get(key, _MISSING), want.get(key, _MISSING)
    show = (lambda v: "missing" if v is _MISSING else repr(v))
    return field, show(have), show(want)


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


def partial_path(out: str | Path) -> Path:
    """OUT.partial: where a resumable writer appends before the atomic rename over OUT."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def check_paths(inp: str | Path, out: str | Path, what: str = "chains file") -> None:
    """Refuse an input that is missing or a directory (FileNotFoundError / ValueError naming it), an
    output that is a directory, and an output that would write over the input (also through
    OUT.partial)."""
    src = Path(inp)
    if src.is_dir():
        raise ValueError(f"{inp}: is a directory, not a {what}")
    if not src.is_file():
        raise FileNotFoundError(f"{inp}: no such input file")
    if Path(out).is_dir():
        raise ValueError(f"--out {out}: is a directory; give a file path")
    for target in (Path(out), partial_path(out)):
        if target.resolve() == src.resolve() or (target.exists() and os.path.samefile(target, src)):
            raise ValueError(f"--out {out} would overwrite the input {inp}; choose another output path")
