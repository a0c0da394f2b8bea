"""Reasoning chains: the `Chain` type, a validating JSONL reader, and the GSM8K importer.

A chains file has one JSON object per line with `question`, `reasoning`, `answer` (strings) and
an optional `id` (a string or an integer); extra fields are kept in `Chain.extra`.
Files are UTF-8 (an initial byte-order mark is accepted) and split on "\n" only: a "\r\n" ending
is JSON whitespace, and a raw carriage return inside a line makes that one line bad without
shifting the numbers of the lines after it.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union


class ChainFormatError(ValueError):
    """A chains/ranked file has a bad line; the message names file, line and field."""


@dataclass(frozen=True)
class Chain:
    """One (question, reasoning, answer) triple; `id` identifies it in ranked data and caches."""

    question: str
    reasoning: str
    answer: str
    id: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_mapping(cls, obj: Mapping[str, Any], where: str = "chain") -> "Chain":
        """Validate a mapping; `where` (e.g. "file.jsonl:12") prefixes every error."""
        if not isinstance(obj, Mapping):
            raise ChainFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        vals = {}
        for key in ("question", "reasoning", "answer"):
            if key not in obj:
                raise ChainFormatError(f"{where}: missing field '{key}'")
            if not isinstance(obj[key], str):
                raise ChainFormatError(f"{where}: field '{key}' must be a string, got {type(obj[key]).__name__}")
            vals[key] = obj[key]
        cid = obj.get("id", "")
        if isinstance(cid, bool) or not isinstance(cid, (str, int)):
            raise ChainFormatError(f"{where}: field 'id' must be a string or an integer, got {json.dumps(cid)}")
        extra = {k: v for k, v in obj.items() if k not in ("question", "reasoning", "answer", "id")}
        for key, value in (*vals.items(), ("id", cid), *extra.items()):
            _check_unicode(value, where, key)
        return cls(vals["question"], vals["reasoning"], vals["answer"], str(cid), extra)

    def checked(self, where: str = "chain") -> "Chain":
        """This chain, validated as `from_mapping` validates a mapping (string fields, valid Unicode):
        a `Chain` built directly is checked before it reaches the tokenizer. Raises ChainFormatError."""
        return Chain.from_mapping({**self.extra, **self.to_dict()}, where)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "reasoning": self.reasoning, "answer": self.answer}

    @property
    def content_hash(self) -> str:
        """`chain_hash` of this chain's question, reasoning and answer."""
        return chain_hash(self.question, self.reasoning, self.answer)


def _check_unicode(value: Any, where: str, key: str) -> None:
    """Raise ChainFormatError if a field holds a lone surrogate (JSON "\\ud83d" without its pair, as
    left by tools that cut a string inside an emoji): it is no Unicode text, cannot be tokenized
    or written as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ChainFormatError(f"{where}: field '{key}' is not valid Unicode: lone surrogate "
                                   f"U+{ord(value[e.start]):04X} at character {e.start + 1}") from None
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _check_unicode(k, where, key)
            _check_unicode(v, where, key)
    elif isinstance(value, list):
        for v in value:
            _check_unicode(v, where, key)


def chain_hash(question: str, reasoning: str, answer: str) -> str:
    """Content hash of a chain (16 hex digits of SHA-256 over its three texts; the id is not part):
    output records store it so that a resumed run notices an input chain that changed."""
    data = json.dumps([question, reasoning, answer], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:16]


ChainLike = Union[Chain, Mapping[str, Any]]


def as_chain(obj: ChainLike, where: str = "chain") -> Chain:
    """A validated Chain from a mapping or a Chain (ChainFormatError prefixed with `where`)."""
    return obj.checked(where) if isinstance(obj, Chain) else Chain.from_mapping(obj, where)


def chain_items(obj: Any) -> tuple[list[Any], bool]:
    """(items, was_single) of what the API takes as chains: one chain (a Chain or a mapping) or an
    iterable of them (its items unchecked). Anything else (None, a string, a number) raises a TypeError
    that says what is expected."""
    if isinstance(obj, (Chain, Mapping)):
        return [obj], True
    if isinstance(obj, (str, bytes)) or not isinstance(obj, Iterable):
        raise TypeError("chains must be one chain (a dict with 'question', 'reasoning' and 'answer', or a Chain) "
                        f"or a list of them, got {type(obj).__name__}")
    return list(obj), False


def as_chain_list(obj: ChainLike | list[ChainLike]) -> tuple[list[Chain], bool]:
    """Normalize one chain or a list of chains; returns (chains, was_single). A bad list item raises
    ChainFormatError naming its index ("chains[3]: missing field 'answer'"), neither a chain nor a list
    TypeError (`chain_items`)."""
    items, single = chain_items(obj)
    if single:
        return [as_chain(obj)], True
    return [as_chain(c, f"chains[{i}]") for i, c in enumerate(items)], False


def json_error_text(e: json.JSONDecodeError) -> str:
    """ "Expecting ',' delimiter at column 12", "Unterminated string starting at column 3" (json's
    messages that end in "at" get the column right after it) for the error of one parsed line: the
    column is the character of the line (json's own column restarts after the line's "\n", where an
    error at the end of a cut line lies)."""
    col = e.pos + 1
    return f"{e.msg} column {col}" if e.msg.endswith(" at") else f"{e.msg} at column {col}"


ACCEPTED_FORMATS = ("this tool reads JSON Lines, one JSON object per line (a chain: {\"id\": ..., \"question\": ..., "
                    "\"reasoning\": ..., \"answer\": ...}); predict and prune also read one JSON array of records")


_HEADER_NAME = re.compile(r"[A-Za-z_][\w \-/()]{0,39}")  # a column name: a word, no sentence punctuation


def looks_like_table(first: str, second: str | None, sep: str) -> bool:
    """Whether two lines look like the header and first row of a `sep`-separated table (CSV, TSV): the
    first holds two or more short column names (`_HEADER_NAME`, quotes allowed), the second as many
    fields. Prose with a comma fails it (one line, or words that are no column names)."""
    import csv

    if second is None:
        return False
    head = next(csv.reader([first.strip("\r\n")], delimiter=sep), [])
    if len(head) < 2 or not all(_HEADER_NAME.fullmatch(name.strip()) for name in head):
        return False
    return len(next(csv.reader([second.strip("\r\n")], delimiter=sep), [])) == len(head)


def _next_text_line(rest: Iterable[bytes | str]) -> str | None:
    """The first non-blank line of `rest` (bytes decoded as UTF-8, bad bytes replaced), or None."""
    for raw in rest:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if line.strip():
            return line
    return None


def not_json_lines(path: str | Path, lineno: int, line: str,
                   rest: Iterable[bytes | str] = ()) -> ChainFormatError | None:
    """The file-level error of a file whose first non-blank line `line` (not valid JSON) is no JSON
    record at all (it starts with neither "{" nor "["): CSV or TSV (`looks_like_table` with the next
    non-blank line, read from `rest`: the lines after it) or plain text, said once instead of one
    invalid-JSON error per line. None for a line that starts like JSON (a malformed record)."""
    text = line.strip()
    if text.startswith(("{", "[")):
        return None
    shown = text if len(text) <= 60 else text[:57] + "..."
    tabs = text.count("\t") > text.count(",")
    if looks_like_table(line, _next_text_line(rest), "\t" if tabs else ","):
        header = " with a header line" if re.search(r"\b(id|question|reasoning|answer)\b", text, re.I) else ""
        looks = f"{'TSV (tab' if tabs else 'CSV (comma'}-separated values{header})"
        convert = ("; convert it, e.g. python -c \"import csv, json, sys; [print(json.dumps(r)) for r in "
                   f"csv.DictReader(sys.stdin{', delimiter=chr(9)' if tabs else ''})]\""
                   + (f" < {path} > {Path(path).stem}.jsonl" if Path(path).is_file() else ""))
    else:
        looks, convert = "plain text", ""
    return ChainFormatError(f"{path}: not JSON Lines: line {lineno} ({shown!r}) is no JSON record; the file looks like "
                            f"{looks}; {ACCEPTED_FORMATS}{convert}")


def iter_jsonl_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed JSON or ChainFormatError) for each non-blank line.

    Lines are split on b"\n" only; a UTF-8 byte-order mark at the start of the file is dropped; a
    line that is not valid UTF-8 or not valid JSON yields a ChainFormatError naming file:line, so
    that callers choose between skipping it (streaming commands) and failing (label, check-data).
    A UTF-16 file (its byte-order mark) or a gzip file (its magic bytes) raises ChainFormatError at once:
    none of its lines is UTF-8 text;
    so does a file whose first non-blank line is no JSON at all (CSV, plain text: `not_json_lines`)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a JSONL file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    first = True  # before the first non-blank line
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):  # binary files iterate on b"\n" only
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            elif lineno == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
                raise ChainFormatError(f"{path}: UTF-16 text (byte-order mark {raw[:2].hex(' ').upper()}), as Windows "
                                       "editors save 'Unicode'; chains files are UTF-8: convert it (e.g. "
                                       f"iconv -f UTF-16 -t UTF-8 {path} > {path.stem}.utf8{path.suffix})")
            elif lineno == 1 and raw[:2] == b"\x1f\x8b":
                raise ChainFormatError(f"{path}: gzip-compressed (magic bytes 1F 8B); chains files are plain UTF-8 "
                                       f"JSON Lines: decompress it first (e.g. gunzip -k {path})")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield lineno, ChainFormatError(f"{path}:{lineno}: not valid UTF-8 (byte {e.start + 1} of the line)")
                first = False
                continue
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                if first and (err := not_json_lines(path, lineno, line, f)) is not None:
                    raise err from None
                value = ChainFormatError(f"{path}:{lineno}: invalid JSON: {json_error_text(e)}")
            first = False
            yield lineno, value


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, object) for each non-blank line; a line that is not valid UTF-8 or not
    valid JSON raises ChainFormatError naming file:line."""
    for lineno, obj in iter_jsonl_lines(path):
        if isinstance(obj, ChainFormatError):
            raise obj
        yield lineno, obj


def read_chains(path: str | Path) -> list[Chain]:
    """Read a chains JSONL file; ids default to "<file stem>-<line>" and must be unique."""
    return [c for _, c in read_chains_with_lines(path)]


def read_chains_with_lines(path: str | Path) -> list[tuple[int, Chain]]:
    """`read_chains`, each chain with the line number it was read from."""
    path = Path(path)
    chains: list[tuple[int, Chain]] = []
    seen: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path):
        where = f"{path}:{lineno}"
        c = Chain.from_mapping(obj, where)
        if not c.id:
            c = Chain(c.question, c.reasoning, c.answer, f"{path.stem}-{lineno}", c.extra)
        if c.id in seen:
            raise ChainFormatError(f"{where}: field 'id': duplicate id {c.id!r} (first on line {seen[c.id]})")
        seen[c.id] = lineno
        chains.append((lineno, c))
    return chains


_CALC = re.compile(r"<<[^>]*>>")


def gsm8k_to_chain(obj: Mapping[str, Any], cid: str) -> Chain:
    """GSM8K record -> Chain: reasoning = solution before '####' without <<calc>> annotations."""
    sol = obj["answer"]
    if "####" not in sol:
        raise ChainFormatError(f"{cid}: GSM8K answer has no '####' separator")
    body, ans = sol.split("####", 1)
    return Chain(obj["question"].strip(), _CALC.sub("", body).strip(), ans.strip(), cid)


def read_gsm8k(path: str | Path, prefix: str = "gsm8k-train") -> list[Chain]:
    """Read a GSM8K JSONL file (question, answer with '#### final'); ids are "<prefix>-<row index>"."""
    out = []
    for i, (lineno, obj) in enumerate(iter_jsonl(path)):
        for key in ("question", "answer"):
            if not isinstance(obj.get(key), str):
                raise ChainFormatError(f"{path}:{lineno}: missing or non-string field '{key}'")
        out.append(gsm8k_to_chain(obj, f"{prefix}-{i}"))
    return out
