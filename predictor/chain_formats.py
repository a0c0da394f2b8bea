"""Records in other tools' formats: read a chain out of them, write the record back with its reasoning replaced.

Three record formats (`FORMATS`), told apart per record by `detect_format` (format "auto"):

- "chain": this project's own {"id", "question", "reasoning", "answer", ...} record;
- "messages": a chat record as OpenAI-style tools write it (ms-swift, LlamaFactory's "openai" and
  "sharegpt" layouts, trl): {"messages": [{"role": "user", "content": ...}, {"role": "assistant",
  "content": "<think>...</think>answer"}]} (or "conversations" with "from"/"value" and the roles
  "human"/"gpt"). The question is the user turn(s) before the last assistant turn (joined by a blank
  line), the reasoning the assistant's `<think>...</think>` part (from the start of the content when
  only `</think>` is there, as when the chat template opened the tag; or the turn's
  "reasoning_content" / "reasoning" / "thinking" field, as the DeepSeek API returns it), the answer the
  rest of the turn. Content given as a list of parts ([{"type": "text", "text": ...}]) works too;
- "fields": any other schema, through a field mapping (`parse_fields`): "question=prompt,
  reasoning=cot,answer=output" (dotted paths reach nested fields and list items:
  "question=messages.0.content"). When reasoning and answer map to the same field, its
  `<think>` part is the reasoning and the rest the answer.

`read_record` returns the `Chain` and a `RecordLayout` (where the reasoning lies in the record);
`write_record` gives the input record back with only the reasoning replaced, in place (the
`<think>` tags, the whitespace around the reasoning, every other field and turn as they were), so a
record written with its reasoning unchanged is the input record.

Files (`iter_records`): JSON Lines (read by `chains.iter_jsonl_lines`, with its rules: BOM, UTF-16,
line numbers) or one JSON array of records (a file whose first character is "["), whose records
are named by line and item ("data.json:12 (item 3)") and get default ids "<stem>-<item>".

The parts: `record_fields` (field paths, the mapping, format detection, the messages and fields
parsers), `record_files` (the records of a file: JSON Lines, a JSON array, standard input); this
module reads a chain out of a record, writes the record back and iterates the chains of a file.

Errors are `ChainFormatError`s naming file, line and field: "data.jsonl:3: field
'messages[1].content': no <think>...</think> part and no 'reasoning_content': nothing to prune".
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .chains import Chain, ChainFormatError, _check_unicode
from .record_fields import (CONTAINERS, FORMATS, Path_, RecordLayout, _fields, _get, _messages, _set, detect_format,
                            parse_fields, path_text, split_think)
from .record_files import Located, iter_records

__all__ = ["ChainRecord", "RecordLayout", "SourcedChain", "detect_format", "iter_chains", "iter_records", "out_id",
           "parse_fields", "read_record", "split_think", "write_record"]


def _chain(where: str, question: str, reasoning: str, answer: str, cid: Any, extra: Mapping[str, Any]) -> Chain:
    rec = {**extra, "question": question, "reasoning": reasoning, "answer": answer}
    if cid is not None:
        rec["id"] = cid
    return Chain.from_mapping(rec, where)


def read_record(obj: Any, where: str, fmt: str = "auto", fields: str | Mapping[str, Any] | None = None,
                default_id: str | None = None) -> tuple[Chain, RecordLayout]:
    """The chain of one record and where its reasoning lies.

    fmt: "auto" (`detect_format`), "chain" or "messages"; fields: a field mapping (`parse_fields`;
    then the record is read through it, fmt "auto" or "fields"). default_id: the id of a record
    without one (e.g. "<file stem>-<line>"). Raises ChainFormatError naming `where` and the field,
    ValueError for a bad fmt or mapping."""
    if fmt not in ("auto", *FORMATS):
        raise ValueError(f"--format must be one of auto, {', '.join(FORMATS)}, got {fmt!r}")
    if not fields:
        mapping: dict[str, Path_] = {}
    elif isinstance(fields, dict) and all(isinstance(v, tuple) for v in fields.values()):
        mapping = dict(fields)  # parsed already
    else:
        mapping = parse_fields(fields)
    if mapping and fmt not in ("auto", "fields"):
        raise ValueError(f"--field maps the fields of other schemas; it does not apply to --format {fmt}")
    if fmt == "fields" and not mapping:
        raise ValueError("--format fields needs a mapping: --field question=...,reasoning=...,answer=...")
    if not isinstance(obj, Mapping):
        raise ChainFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    kind = "fields" if mapping else (detect_format(obj) if fmt == "auto" else fmt)
    if kind is None:
        names = ", ".join(repr(k) for k in list(obj)[:8]) or "none"
        raise ChainFormatError(
            f"{where}: cannot tell the record's format (fields {names}): a chain has 'question', 'reasoning' and "
            "'answer', a messages record a 'messages' list; map other fields with --field "
            "question=...,reasoning=...,answer=...")
    if kind == "chain":
        if detect_format(obj) == "messages" and "question" not in obj:
            raise ChainFormatError(f"{where}: missing field 'question' (this is a messages record: --format messages "
                                   "or auto)")
        chain = Chain.from_mapping(obj, where)
        if not chain.id and default_id is not None:
            chain = Chain(chain.question, chain.reasoning, chain.answer, default_id, chain.extra)
        return chain, RecordLayout("chain", ("reasoning",), 0, len(chain.reasoning))
    if kind == "messages":
        if not any(isinstance(obj.get(k), list) for k in CONTAINERS):
            raise ChainFormatError(f"{where}: missing field 'messages' (a list of turns)"
                                   + (" (this is a chain record: --format chain or auto)" if detect_format(obj)
                                      else ""))
        question, reasoning, answer, layout = _messages(obj, where)
        consumed = {layout.path[0]}
    else:
        question, reasoning, answer, layout = _fields(obj, where, mapping)
        consumed = {str(mapping.get(t, (t,))[0]) for t in ("question", "reasoning", "answer")}
    if not reasoning:
        raise ChainFormatError(f"{where}: field '{path_text(layout.path)}': the reasoning is empty")
    for k in consumed:
        _check_unicode(obj[k], where, str(k))
    id_path = mapping.get("id", ("id",))
    try:
        cid = _get(obj, id_path)
    except KeyError:
        cid = default_id
    extra = {k: v for k, v in obj.items() if k not in consumed and k != "id"}
    return _chain(where, question, reasoning, answer, cid, extra), layout


def write_record(obj: Mapping[str, Any], layout: RecordLayout, reasoning: str) -> dict[str, Any]:
    """A copy of the record `obj` with its reasoning (at `layout`) replaced by `reasoning`, in place:
    the rest of the string that held it (tags, whitespace, answer) and every other field unchanged."""
    out = copy.deepcopy(dict(obj))
    old = _get(out, layout.path)
    _set(out, layout.path, old[:layout.start] + reasoning + old[layout.end:])
    return out




@dataclass(frozen=True)
class ChainRecord:
    """One readable record of a file: where it is, its chain, where its reasoning lies, the record itself."""

    at: Located
    chain: Chain
    layout: RecordLayout
    record: Any
    raw_id: Any = None  # the record's id as written (None without one)

    def written(self, reasoning: str) -> dict[str, Any]:
        """The record, in its own format, with its reasoning replaced (`write_record`)."""
        return write_record(self.record, self.layout, reasoning)


@dataclass(frozen=True)
class SourcedChain(Chain):
    """A `Chain` that knows the record it was read from (`source`), so that an output can be written
    in the input's own format (`ChainRecord.written`) and keep the input's id as it was (an integer
    stays an integer: `out_id`)."""

    source: ChainRecord | None = field(default=None, compare=False, repr=False)

    @property
    def out_id(self) -> Any:
        """The id as the input wrote it: an integer id stays an integer; a default id is a string."""
        raw = self.source.raw_id if self.source is not None else None
        return raw if isinstance(raw, int) and not isinstance(raw, bool) and str(raw) == self.id else self.id


def out_id(chain: Chain) -> Any:
    """The id an output record gives `chain` (`SourcedChain.out_id`; a plain Chain's string id)."""
    return chain.out_id if isinstance(chain, SourcedChain) else chain.id


def iter_chains(path: str | Path, fmt: str = "auto", fields: str | Mapping[str, Any] | None = None
                ) -> Iterator[ChainRecord | ChainFormatError]:
    """Each record of a file as a ChainRecord, or the ChainFormatError of a bad one (naming file,
    line and field), for callers that skip and count bad records; ids default to `Located.default_id`."""
    mapping = parse_fields(fields) if fields is not None else {}
    for at in iter_records(path):
        if isinstance(at.value, ChainFormatError):
            yield at.value
            continue
        try:
            chain, layout = read_record(at.value, at.where, fmt, mapping or None, at.default_id)
        except ChainFormatError as e:
            yield e
            continue
        try:
            raw_id = _get(at.value, mapping.get("id", ("id",)))
        except KeyError:
            raw_id = None
        rec = ChainRecord(at, chain, layout, at.value, raw_id)
        yield ChainRecord(at, SourcedChain(chain.question, chain.reasoning, chain.answer, chain.id, chain.extra,
                                           source=rec), layout, at.value, raw_id)
