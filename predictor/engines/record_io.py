"""What `predict` and `prune` read and write beyond their own chains files: the formats other tools write
(--format, --field: `predictor.chain_formats`), pipes (--in - / --out -, a FIFO or character device as
OUT) and precomputed ranks (prune --ranks FILE, a `predict` output).

- `FormattedChains`: the reader of predict / prune (JSON Lines or a JSON array file, records in the
  chain, messages or a mapped format, or standard input as it comes); malformed records and duplicate
  ids are skipped and counted, as `chain_io.StreamedChains` counts them. Each chain knows its record
  (`chain_formats.SourcedChain`), so prune writes its output in the input's format.
- `StreamOutput`: records written to standard output or a FIFO / character device as they come: no
  OUT.partial, no resume (a stream cannot be read back), never a read of OUT.
- `RanksFile`: a `predict` output read by id; `ranks_for` checks each chain's content hash.
"""
from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..chain_formats import iter_chains, parse_fields
from ..chains import Chain, ChainFormatError
from ..layout import ChainError

STDIO = "-"
FORMAT_CHOICES = ("auto", "chain", "messages")


def add_format_arguments(p: argparse.ArgumentParser) -> None:
    """--format and --field (predict, prune)."""
    p.add_argument("--format", dest="format", choices=FORMAT_CHOICES, default="auto",
                   help="input records: chain ({id, question, reasoning, answer}), messages (OpenAI-style chat "
                        "records: question = the user turn(s), reasoning = the assistant's <think> part, answer = "
                        "the rest) or auto (default: told apart per record; the format found is reported)")
    p.add_argument("--field", default=None, metavar="MAP",
                   help="read other schemas through a field mapping, e.g. question=prompt,reasoning=cot,"
                        "answer=output (dotted paths reach nested fields: question=messages.0.content; targets "
                        "question, reasoning, answer, id; docs/pruning.md has TokenSkip's and LLMLingua's)")


def is_stdio(path: Any) -> bool:
    return str(path) == STDIO


def is_stream(out: Any) -> bool:
    """True for "-" (standard output) and an existing OUT that is no regular file (a FIFO, a character
    device such as /dev/stdout into a pipe or a terminal, a socket): written as records come, never read."""
    if is_stdio(out):
        return True
    try:
        mode = os.stat(out).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def check_stream_paths(inp: str, out: str, engine: str = "local") -> None:
    """Refuse what streams cannot do (before anything loads): --engine ray reads and writes files."""
    if engine == "ray" and (is_stdio(inp) or is_stream(out)):
        raise ValueError("--engine ray reads a file and merges into a file: --in - / --out - (or a pipe as --out) "
                         "need --engine local")


class FormattedChains:
    """Iterate the valid chains of a records file (`chain_formats.iter_chains`: JSON Lines or a JSON
    array, any format; "-": standard input as it comes) one by one; a malformed record (bad UTF-8, bad
    JSON, bad or missing fields) and a duplicate id are counted in `skips`; `read` counts the chains
    yielded, `formats` the records of each format; the first format found by auto-detection is said
    on stderr once (`announce`)."""

    def __init__(self, path: str | Path, skips, limit: int | None = None, fmt: str = "auto",
                 fields: str | None = None, announce: str | None = None):
        self.inp, self.skips, self.limit = path, skips, limit
        self.fmt = fmt or "auto"
        self.spec = fields or None
        self.fields = parse_fields(fields) if fields else None  # checked before anything loads
        if self.fields and self.fmt not in ("auto", "fields"):
            raise ValueError(f"--field maps the fields of other schemas; it does not apply to --format {self.fmt}")
        self.announce = announce
        self.read = 0
        self.formats: dict[str, int] = {}
        self.where: dict[str, str] = {}  # chain id -> "file:line" of the chains yielded

    def __iter__(self) -> Iterator[Chain]:
        from .chain_io import no_chain_read  # noqa: F401  (the same error text as the chains reader)

        seen: set[str] = set()
        k = 0
        for item in iter_chains(self.inp, "fields" if self.fields else self.fmt, self.spec):
            if self.limit is not None and k >= self.limit:
                return
            k += 1
            if isinstance(item, ChainFormatError):
                self.skips.add("not valid UTF-8" if "not valid UTF-8" in str(item) else "malformed JSONL line",
                               str(item))
                continue
            c, where = item.chain, item.at.where
            if c.id in seen:
                self.skips.add("duplicate id", f"{where}: duplicate id {c.id!r}")
                continue
            seen.add(c.id)
            fmt = item.layout.format
            if not self.formats and self.announce and self.fmt == "auto" and not self.fields and fmt != "chain":
                what = {"messages": "messages records (question = user turns, reasoning = the assistant's <think> "
                                    "part, answer = the rest)"}.get(fmt, f"{fmt} records")
                print(f"{self.announce}: {self.name}: {what}, found by --format auto at {where}; --format chain|"
                      "messages chooses, --field maps other fields", file=sys.stderr)
            self.formats[fmt] = self.formats.get(fmt, 0) + 1
            self.where[c.id] = where
            self.read += 1
            yield c

    @property
    def name(self) -> str:
        return "<stdin>" if is_stdio(self.inp) else str(self.inp)

    def check_read(self) -> None:
        """ValueError if no record of the input could be read (after a full pass)."""
        from .chain_io import no_chain_read

        if self.read == 0:
            self.skips.report()
            raise no_chain_read(self.name, self.skips)


class StreamOutput:
    """Records written to standard output ("-") or to a FIFO / character device as they come (flushed
    line by line): nothing is resumed, OUT is never read, no OUT.partial is made."""

    resumed = 0

    def __init__(self, out: str):
        self.out = out
        self.done: set[str] = set()
        self._f = None

    def is_done(self, chain: Chain) -> bool:
        return False

    def check_content(self, chain: Chain) -> None:
        """Nothing to check: a stream holds no finished record."""

    def write(self, record: dict[str, Any]) -> None:
        if self._f is None:
            self._f = sys.stdout.buffer if is_stdio(self.out) else open(self.out, "ab", buffering=0)
        self._f.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        self._f.flush()

    def __enter__(self) -> "StreamOutput":
        return self

    def __exit__(self, *_) -> None:
        if self._f is not None and not is_stdio(self.out):
            self._f.close()


class MissingRanksError(ChainError):
    """A chain whose id is not in the --ranks file (its predict run skipped it, or another input)."""


class RanksFile:
    """A `predictor predict` output read by id (`jsonl_io.OutputRecords`): its records' ranks, the
    scorer, LM fingerprint and refresh they were predicted with (one of each in the file), and the
    contiguity defaults of that predictor (`prune_defaults`, when the predict run stored them)."""

    def __init__(self, path: str | Path):
        from ..jsonl_io import OutputRecords

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"--ranks {path}: no such file (a `predictor predict` output)")
        self.records: dict[str, tuple[int, str | None, list[int]]] = {}
        seen: dict[str, tuple[Any, int]] = {}
        self.prune_defaults: dict[str, float] = {}
        for lineno, obj in OutputRecords(self.path, required=("id", "ranks"), name=f"--ranks {path}", cut_ok=False):
            for key in ("scorer", "lm", "refresh"):
                if key in seen and obj.get(key) != seen[key][0]:
                    raise ValueError(f"--ranks {path}:{lineno}: field '{key}' is {obj.get(key)!r} but line "
                                     f"{seen[key][1]} has {seen[key][0]!r}: one file holds the ranks of one run")
                seen.setdefault(key, (obj.get(key), lineno))
            if not isinstance(obj["ranks"], list):
                raise ValueError(f"--ranks {path}:{lineno}: field 'ranks' must be a list (a predict output)")
            self.records[str(obj["id"])] = (lineno, obj.get("chain_hash"), obj["ranks"])
            if isinstance(obj.get("prune_defaults"), dict):
                self.prune_defaults = obj["prune_defaults"]
        if not self.records:
            raise ValueError(f"--ranks {path}: no record (a `predictor predict` output has one per chain)")
        self.scorer = seen["scorer"][0]
        self.lm = seen["lm"][0]
        self.refresh = seen["refresh"][0] if seen["refresh"][0] is not None else 1

    def ranks_for(self, chain: Chain) -> list[int]:
        """The ranks of `chain` (matched by id, checked by content hash): MissingRanksError (skipped
        and counted) for an id not in the file, ValueError for a chain changed since its ranks."""
        from ..layout import chain_name

        if chain.id not in self.records:
            raise MissingRanksError(f"{chain_name(chain)}: no ranks in --ranks {self.path} (its predict run "
                                    "skipped it, or it predicted another input)")
        lineno, old, ranks = self.records[chain.id]
        if old != chain.content_hash:
            raise ValueError(f"--ranks {self.path}:{lineno}: {chain_name(chain)} changed since its ranks were "
                             f"predicted (chain_hash {old} there, {chain.content_hash} now); predict it again")
        return ranks


class GivenRanks:
    """The ranker of `prune --ranks`: an LM (its tokenizer and context) and ranks read from the file; a
    forward pass is never needed (`pruning.prune_with(ranks=...)`), so asking for one is an error."""

    def __init__(self, lm, ranks: RanksFile):
        self.lm = lm
        self.name = ranks.scorer
        self.prune_defaults = dict(ranks.prune_defaults)

    def __repr__(self) -> str:
        return f"ranks of {self.name!r} (lm [{self.lm.fingerprint}])"

    def predict_ranks(self, *a, **k):
        raise RuntimeError("prune --ranks runs no forward pass")

    score_many = predict_ranks
