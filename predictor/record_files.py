"""The records of a file, each with its place: JSON Lines (read by `chains.iter_jsonl_lines`, with its
rules: BOM, UTF-16, line numbers), one JSON array of records (a file whose first character is "["),
whose records are named by line and item ("data.json:12 (item 3)") and get default ids
"<stem>-<item>", or standard input ("-", read as it comes). `iter_records` yields a `Located` per
record; `chain_formats.iter_chains` reads the chains out of them.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .chains import ChainFormatError, iter_jsonl_lines


@dataclass(frozen=True)
class Located:
    """A record of a file: its line (1-based), its item in a JSON array (1-based; None in JSON Lines),
    and the parsed value or the ChainFormatError of a bad line."""

    line: int
    item: int | None
    value: Any
    path: Path

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" + (f" (item {self.item})" if self.item is not None else "")

    @property
    def default_id(self) -> str:
        stem = "stdin" if self.path == STDIN else self.path.stem
        return f"{stem}-{self.item if self.item is not None else self.line}"


def is_json_array_file(path: str | Path) -> bool:
    """Whether the file's first character (after a UTF-8 byte-order mark and whitespace) is "["."""
    with Path(path).open("rb") as f:
        head = f.read(4096)
        while head and not head.lstrip(b"\xef\xbb\xbf \t\r\n"):
            more = f.read(4096)
            if not more:
                break
            head += more
    return head.lstrip(b"\xef\xbb\xbf").lstrip(b" \t\r\n")[:1] == b"["


def _array_items(path: Path, raw: bytes | None = None) -> Iterator[Located]:
    raw = path.read_bytes() if raw is None else raw
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - raw.rfind(b"\n", 0, e.start)
        raise ChainFormatError(f"{path}:{line}: not valid UTF-8 (byte {col} of the line)") from None
    dec = json.JSONDecoder()
    ws = re.compile(r"[ \t\r\n]*")
    pos = ws.match(text, 0).end() + 1  # after "["
    line, counted, item = 1, 0, 0

    def line_at(i: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, i)
        counted = i
        return line

    def bad(i: int, msg: str) -> ChainFormatError:
        ln = line_at(i)
        col = i - text.rfind("\n", 0, i)
        return ChainFormatError(f"{path}:{ln}: invalid JSON array: {msg} at column {col} (the records after it "
                                "cannot be read)")

    pos = ws.match(text, pos).end()
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            try:
                value, end = dec.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                raise bad(e.pos, e.msg) from None
            item += 1
            yield Located(line_at(pos), item, value, path)
            pos = ws.match(text, end).end()
            if text.startswith(",", pos):
                pos = ws.match(text, pos + 1).end()
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                raise bad(pos, "expecting ',' or ']'" if pos < len(text) else "unterminated array")
    if ws.match(text, pos).end() != len(text):
        raise bad(ws.match(text, pos).end(), "extra data after the array")


STDIN = Path("<stdin>")  # how records read from standard input ("-") are named: "<stdin>:3", ids "stdin-3"


def _line_value(raw: bytes, lineno: int, path: Path, first: bool = False, rest: Iterable[bytes] = ()) -> Any:
    """One JSON Lines line as `chains.iter_jsonl_lines` reads it: the parsed value or its ChainFormatError;
    first (the first non-blank line): raises the file-level ChainFormatError of CSV or plain text (rest:
    the lines after it, read only then, to tell a table's second line)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return ChainFormatError(f"{path}:{lineno}: not valid UTF-8 (byte {e.start + 1} of the line)")
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        from .chains import json_error_text, not_json_lines

        if first and (err := not_json_lines(path, lineno, line, rest)) is not None:
            raise err from None
        return ChainFormatError(f"{path}:{lineno}: invalid JSON: {json_error_text(e)}")


def _stdin_records(stream=None) -> Iterator[Located]:
    """The records of standard input as they come, line by line (a JSON array: read whole first)."""
    import sys

    f = stream if stream is not None else sys.stdin.buffer
    for lineno, raw in enumerate(f, 1):  # a binary stream iterates on b"\n" only
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        if raw.lstrip().startswith(b"["):  # the first non-blank line opens a JSON array
            yield from _array_items(STDIN, b"\n" * (lineno - 1) + raw + f.read())
            return
        yield Located(lineno, None, _line_value(raw, lineno, STDIN, first=True, rest=f), STDIN)
        for lineno2, raw2 in enumerate(f, lineno + 1):
            if raw2.strip():
                yield Located(lineno2, None, _line_value(raw2, lineno2, STDIN), STDIN)
        return


def iter_records(path: str | Path) -> Iterator[Located]:
    """Every record of a JSON Lines file (a bad line: a Located holding its ChainFormatError, as
    `chains.iter_jsonl_lines` yields it) or of a JSON array file (`is_json_array_file`; invalid JSON
    raises ChainFormatError naming file:line:column, as no record after it can be read). A file or input
    whose first line is no JSON at all (CSV, plain text) raises one ChainFormatError that says so
    (`chains.not_json_lines`). path "-": standard input, read as it comes (JSON Lines; a JSON array is
    read whole)."""
    if str(path) == "-":
        yield from _stdin_records()
        return
    path = Path(path)
    if path.is_file() and is_json_array_file(path):
        yield from _array_items(path)
        return
    for lineno, value in iter_jsonl_lines(path):
        yield Located(lineno, None, value, path)
