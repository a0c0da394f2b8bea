"""Reasoning chains: the `Chain` type, a validating JSONL reader, and the GSM8K importer.

A chains file has one JSON object per line with `question`, `reasoning`, `answer` (strings) and
an optional `id`; extra fields are kept in `Chain.extra`.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
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
        if not isinstance(cid, (str, int)):
            raise ChainFormatError(f"{where}: field 'id' must be a string or integer")
        extra = {k: v for k, v in obj.items() if k not in ("question", "reasoning", "answer", "id")}
        return cls(vals["question"], vals["reasoning"], vals["answer"], str(cid), extra)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "reasoning": self.reasoning, "answer": self.answer}


ChainLike = Union[Chain, Mapping[str, Any]]


def as_chain(obj: ChainLike) -> Chain:
    return obj if isinstance(obj, Chain) else Chain.from_mapping(obj)


def as_chain_list(obj: ChainLike | list[ChainLike]) -> tuple[list[Chain], bool]:
    """Normalize one chain or a list of chains; returns (chains, was_single)."""
    if isinstance(obj, (Chain, Mapping)):
        return [as_chain(obj)], True
    return [as_chain(c) for c in obj], False


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; bad JSON raises naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ChainFormatError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
            yield lineno, obj


def read_chains(path: str | Path) -> list[Chain]:
    """Read a chains JSONL file; ids default to "<file stem>-<line>" and must be unique."""
    path = Path(path)
    chains: list[Chain] = []
    seen: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path):
        where = f"{path}:{lineno}"
        c = Chain.from_mapping(obj, where)
        if not c.id:
            c = Chain(c.question, c.reasoning, c.answer, f"{path.stem}-{lineno}", c.extra)
        if c.id in seen:
            raise ChainFormatError(f"{where}: field 'id': duplicate id {c.id!r} (first on line {seen[c.id]})")
        seen[c.id] = lineno
        chains.append(c)
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
