"""One record of another tool's format, taken apart: field paths, the field mapping (--field), format
detection and the parsers of a "messages" record and of a mapped ("fields") record.

`parse_fields` turns "question=prompt,reasoning=cot,answer=output" into paths ("messages.0.content" ->
("messages", 0, "content")); `detect_format` tells a chain record from a messages record; `split_think`
finds the reasoning of "<think>R</think>A"; `_messages` and `_fields` return a record's question,
reasoning, answer and `RecordLayout` (where its reasoning lies), raising `ChainFormatError`s naming
the field. `chain_formats.read_record` is the entry that uses them.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from .chains import ChainFormatError

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
    if found is None and OPEN_TAG in text:
        raise ChainFormatError(f"{where}: field '{path_text(path)}' (the last assistant turn): <think> is not "
                               f"closed (a truncated trace?): nothing to prune")
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

