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

Errors are `ChainFormatError`s naming file, line and field: "data.jsonl:3: field
'messages[1].content': no <think>...</think> part and no 'reasoning_content': nothing to prune".
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from .chains import Chain, ChainFormatError, _check_unicode, iter_jsonl_lines

FORMATS = ("chain", "messages", "fields")
TARGETS = ("question", "reasoning", "answer", "id")
CONTAINERS = ("messages", "conversations")  # the list of turns
ROLE_KEYS = ("role", "from")
CONTENT_KEYS = ("content", "value")
USER_ROLES = ("user", "human")
ASSISTANT_ROLES = ("assistant", "gpt", "model", "bot")
REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")  # a turn's separate reasoning field
OPEN_TAG, CLOSE_TAG = "<think>", "</think>"

Path_ = tuple[Union[str, int], ...]  # a path into a record: keys and list indices


def path_text(path: Path_) -> str:
    """("messages", 2, "content") -> "messages[2].content"."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def parse_path(text: str) -> Path_:
    """"messages.0.content" or "messages[0].content" -> ("messages", 0, "content")."""
    parts: list[Union[str, int]] = []
    for piece in re.split(r"\.|(?=\[)", text.strip()):
        if not piece:
            raise ValueError(f"empty part in the field path {text!r}")
        m = re.fullmatch(r"\[(\d+)\]", piece)
        parts.append(int(m.group(1)) if m else int(piece) if piece.isdigit() else piece)
    return tuple(parts)


def parse_fields(spec: str | Mapping[str, str] | None) -> dict[str, Path_]:
    """A field mapping "question=prompt,reasoning=cot,answer=output" (or a mapping) -> {target: path}.

    Targets are question, reasoning, answer and id; one not given keeps its own name. Raises
    ValueError naming the --field option for an unknown target, a target given twice, or a part that
    is not TARGET=FIELD."""
    if spec is None:
        return {}
    items = list(spec.items()) if isinstance(spec, Mapping) else []
    if isinstance(spec, str):
        for part in spec.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ValueError(f"--field: {part.strip()!r} is not TARGET=FIELD (e.g. question=prompt,reasoning=cot,"
                                 "answer=output)")
            target, source = part.split("=", 1)
            items.append((target.strip(), source.strip()))
    out: dict[str, Path_] = {}
    for target, source in items:
        if target not in TARGETS:
            raise ValueError(f"--field: unknown target {target!r}; targets are {', '.join(TARGETS)}")
        if target in out:
            raise ValueError(f"--field: {target!r} is mapped twice")
        if not isinstance(source, str) or not source.strip():
            raise ValueError(f"--field: {target}= needs a field name")
        try:
            out[target] = parse_path(source)
        except ValueError as e:
            raise ValueError(f"--field: {target}={source}: {e}") from None
    if not out:
        raise ValueError("--field: empty mapping; give e.g. question=prompt,reasoning=cot,answer=output")
    return out


@dataclass(frozen=True)
class RecordLayout:
    """Where a record's reasoning lies: format (one of FORMATS), path to the string holding it, and
    its [start, end) in that string (the whole string: (0, len))."""

    format: str
    path: Path_
    start: int
    end: int


def detect_format(obj: Any) -> str | None:
    """"chain" for a record with question, reasoning and answer; "messages" for one with a
    "messages" / "conversations" list; "chain" for one with some of question, reasoning, answer (so
    that the missing one is named); None otherwise."""
    if not isinstance(obj, Mapping):
        return None
    if all(k in obj for k in ("question", "reasoning", "answer")):
        return "chain"
    if any(isinstance(obj.get(k), list) for k in CONTAINERS):
        return "messages"
    if any(k in obj for k in ("question", "reasoning", "answer")):
        return "chain"  # a chain record missing a field: the chain reader names it
    return None


def split_think(text: str) -> tuple[int, int, int] | None:
    """(start, end, answer_start) of the reasoning in a text holding "<think>R</think>A" (or "R</think>A",
    the opening tag left in the prompt): R's span without its surrounding whitespace, and where the
    text after "</think>" starts; None without a "</think>"."""
    close = text.find(CLOSE_TAG)
    if close < 0:
        return None
    opened = text.rfind(OPEN_TAG, 0, close)
    start = opened + len(OPEN_TAG) if opened >= 0 else 0
    inner = text[start:close]
    return start + len(inner) - len(inner.lstrip()), start + len(inner.rstrip()), close + len(CLOSE_TAG)


def _get(obj: Any, path: Path_) -> Any:
    for p in path:
        if isinstance(p, int) and isinstance(obj, list) and -len(obj) <= p < len(obj):
            obj = obj[p]
        elif isinstance(obj, Mapping) and str(p) in obj:
            obj = obj[str(p)]
        else:
            raise KeyError(p)
    return obj


def _set(obj: Any, path: Path_, value: Any) -> None:
    for p in path[:-1]:
        obj = obj[p if isinstance(obj, list) else str(p)]
    obj[path[-1] if isinstance(obj, list) else str(path[-1])] = value


def _text_of(content: Any, where: str, field: str) -> str:
    """A turn's text: a string, or the "text" of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    raise ChainFormatError(f"{where}: field '{field}' must be a string or a list of parts, got "
                           f"{type(content).__name__}")


def _chain(where: str, question: str, reasoning: str, answer: str, cid: Any, extra: Mapping[str, Any]) -> Chain:
    rec = {**extra, "question": question, "reasoning": reasoning, "answer": answer}
    if cid is not None:
        rec["id"] = cid
    return Chain.from_mapping(rec, where)


def _messages(obj: Mapping[str, Any], where: str) -> tuple[str, str, str, RecordLayout]:
    key = next(k for k in CONTAINERS if isinstance(obj.get(k), list))
    turns = obj[key]
    roles = []
    for i, t in enumerate(turns):
        if not isinstance(t, Mapping):
            raise ChainFormatError(f"{where}: field '{key}[{i}]' must be an object, got {type(t).__name__}")
        rk = next((k for k in ROLE_KEYS if k in t), None)
        ck = next((k for k in CONTENT_KEYS if k in t), None)
        if rk is None:
            raise ChainFormatError(f"{where}: field '{key}[{i}]' has no 'role'")
        if ck is None and not any(k in t for k in REASONING_KEYS):
            raise ChainFormatError(f"{where}: field '{key}[{i}]' has no 'content'")
        roles.append((str(t[rk]).lower(), ck))
    last = max((i for i, (r, _) in enumerate(roles) if r in ASSISTANT_ROLES), default=None)
    if last is None:
        raise ChainFormatError(f"{where}: field '{key}' has no assistant turn (role 'assistant'): no reasoning to prune")
    users = [_text_of(turns[i][ck], where, f"{key}[{i}].{ck}").strip()
             for i, (r, ck) in enumerate(roles[:last]) if r in USER_ROLES and ck is not None]
    if not any(users):
        raise ChainFormatError(f"{where}: field '{key}' has no user turn before the assistant's "
                               f"({key}[{last}]): no question")
    question = "\n\n".join(u for u in users if u)
    turn, ck = turns[last], roles[last][1]
    sep = next((k for k in REASONING_KEYS if isinstance(turn.get(k), str) and turn[k].strip()), None)
    if sep is not None:  # the reasoning in its own field, the content the answer
        text = turn[sep]
        inner = text.strip()
        start = len(text) - len(text.lstrip())
        layout = RecordLayout("messages", (key, last, sep), start, start + len(inner))
        answer = _text_of(turn.get(ck, ""), where, f"{key}[{last}].{ck}").strip() if ck else ""
        return question, inner, answer, layout
    content = turn[ck]
    if isinstance(content, list):  # parts: the one holding </think>
        hits = [j for j, p in enumerate(content)
                if isinstance(p, Mapping) and isinstance(p.get("text"), str) and CLOSE_TAG in p["text"]]
        path: Path_ = (key, last, ck, hits[0], "text") if hits else (key, last, ck)
        text = content[hits[0]]["text"] if hits else _text_of(content, where, path_text(path))
        after = "".join(p.get("text", "") for p in content[hits[0] + 1:]
                        if isinstance(p, Mapping) and isinstance(p.get("text"), str)) if hits else ""
    elif isinstance(content, str):
        path, text, after = (key, last, ck), content, ""
    else:
        raise ChainFormatError(f"{where}: field '{key}[{last}].{ck}' must be a string or a list of parts, got "
                               f"{type(content).__name__}")
    found = split_think(text)
    if found is None:
        raise ChainFormatError(f"{where}: field '{path_text(path)}' (the last assistant turn) has no "
                               f"<think>...</think> part and no 'reasoning_content': nothing to prune")
    start, end, ans = found
    answer = (text[ans:] + after).strip()
    return question, text[start:end], answer, RecordLayout("messages", path, start, end)


def _fields(obj: Mapping[str, Any], where: str, fields: Mapping[str, Path_]) -> tuple[str, str, str, RecordLayout]:
    def value(target: str) -> str:
        path = fields.get(target, (target,))
        how = f" (--field {target}={path_text(path)})" if target in fields else ""
        try:
            v = _get(obj, path)
        except KeyError:
            raise ChainFormatError(f"{where}: missing field '{path_text(path)}'{how}") from None
        if not isinstance(v, str):
            raise ChainFormatError(f"{where}: field '{path_text(path)}'{how} must be a string, got {type(v).__name__}")
        return v

    rpath = fields.get("reasoning", ("reasoning",))
    text = value("reasoning")
    question = value("question")
    same = fields.get("answer") == rpath
    unmapped = "answer" not in fields and not (isinstance(obj, Mapping) and "answer" in obj)
    if same or (unmapped and CLOSE_TAG in text):  # one field holds "<think>R</think>A"
        found = split_think(text)
        if found is None:
            raise ChainFormatError(f"{where}: field '{path_text(rpath)}' holds reasoning and answer but no "
                                   "<think>...</think> part to tell them apart")
        start, end, ans = found
        return question, text[start:end], text[ans:].strip(), RecordLayout("fields", rpath, start, end)
    return question, text, value("answer"), RecordLayout("fields", rpath, 0, len(text))


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


def _line_value(raw: bytes, lineno: int, path: Path) -> Any:
    """One JSON Lines line as `chains.iter_jsonl_lines` reads it: the parsed value or its ChainFormatError."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return ChainFormatError(f"{path}:{lineno}: not valid UTF-8 (byte {e.start + 1} of the line)")
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        from .chains import json_error_text

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
        yield Located(lineno, None, _line_value(raw, lineno, STDIN), STDIN)
        for lineno2, raw2 in enumerate(f, lineno + 1):
            if raw2.strip():
                yield Located(lineno2, None, _line_value(raw2, lineno2, STDIN), STDIN)
        return


def iter_records(path: str | Path) -> Iterator[Located]:
    """Every record of a JSON Lines file (a bad line: a Located holding its ChainFormatError, as
    `chains.iter_jsonl_lines` yields it) or of a JSON array file (`is_json_array_file`; invalid JSON
    raises ChainFormatError naming file:line:column, as no record after it can be read). path "-":
    standard input, read as it comes (JSON Lines; a JSON array is read whole)."""
    if str(path) == "-":
        yield from _stdin_records()
        return
    path = Path(path)
    if path.is_file() and is_json_array_file(path):
        yield from _array_items(path)
        return
    for lineno, value in iter_jsonl_lines(path):
        yield Located(lineno, None, value, path)


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
