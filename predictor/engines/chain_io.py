"""What both engines read and write: the input chains, the counted skips, and the resumable outputs.

Readers: `StreamedChains` (predict, prune: line by line; a malformed line or a duplicate id is skipped
and counted) and `ChainList` (label: the whole file, strict: a bad line is an error). Outputs:
`AtomicResumableOutput` (predict, prune: OUT.partial, renamed over OUT once the input is done) and
`InPlaceOutput` (label: appended to OUT itself, one file may hold both objectives). Both resume: a
finished record is not redone, and one written with other settings or for a changed chain is refused.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..chains import Chain, ChainFormatError, iter_jsonl_lines, read_chains_with_lines
from ..jsonl_io import ResumableJsonlWriter, SettingWordsFn, check_paths, partial_path  # noqa: F401 (re-exported)


def chain_error_kind(err: Exception) -> str:
    """The counted reason of a chain that could not be processed ("empty reasoning", ...)."""
    from ..layout import EmptyReasoningError, MaxTokensError, ProbeTooLongError, TooLongError

    kinds = {ProbeTooLongError: "too long for the LM with the probe", TooLongError: "too long for the LM",
             EmptyReasoningError: "empty reasoning", MaxTokensError: "more reasoning tokens than --max-tokens"}
    return next((v for k, v in kinds.items() if isinstance(err, k)), "unscorable")


# "file:12: ..." or "file:3 (item 2): ...": the place a skip message starts with (file names may hold ":")
_PLACE = re.compile(r"^.*?:(\d+(?: \(item \d+\))?): ")


class Skips:
    """Counted skipped input chains with their reasons: the first `EXAMPLES` messages of each kind kept
    for the report; the rest grouped by reason (`skip_reason`), up to `REASONS` reasons a kind (the
    others in one group), each with the places (lines) of its first `PLACES` skips."""

    EXAMPLES = 3
    REASONS = 5
    PLACES = 10
    OTHER = "other reasons"

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        # kind -> reason -> (skips, their first places) of the skips after the examples
        self.rest: dict[str, dict[str, tuple[int, list[str]]]] = {}

    def add(self, kind: str, message: str, where: str | None = None) -> None:
        """Count one skip; where: its "file:line" (default: read from the start of `message`)."""
        self.counts[kind] += 1
        self.examples.setdefault(kind, [])
        if len(self.examples[kind]) < self.EXAMPLES:
            self.examples[kind].append(message)
            return
        m = _PLACE.match(message) if not where else None
        place = where.rsplit(":", 1)[-1] if where else (m.group(1) if m else None)
        text = message[len(where) + 2:] if where and message.startswith(f"{where}: ") else \
            message[m.end():] if m else message
        groups = self.rest.setdefault(kind, {})
        reason = skip_reason(text)
        if reason not in groups and len(groups) >= self.REASONS:
            reason = self.OTHER
        n, places = groups.get(reason, (0, []))
        if place is not None and len(places) < self.PLACES:
            places.append(place)
        groups[reason] = (n + 1, places)

    def add_chain_error(self, err: Exception, where: str | None = None) -> None:
        """Count a chain that could not be processed; where: its "file:line", put before the message."""
        self.add(chain_error_kind(err), f"{where}: {err}" if where else str(err), where)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def report(self, file=None) -> None:
        """Per kind: its count, the examples, then the rest by reason: "lines 7, 9, 12: missing field
        'answer'" (on the "... and N more" line when there is one reason, else one line each)."""
        file = file or sys.stderr
        for kind, k in self.counts.most_common():
            print(f"skipped {k} chain(s): {kind}", file=file)
            for ex in self.examples[kind]:
                print(f"  e.g. {ex}", file=file)
            more = k - len(self.examples[kind])
            if more <= 0:
                continue
            groups = sorted(self.rest.get(kind, {}).items(), key=lambda g: (g[0] == self.OTHER, -g[1][0]))
            lines = [_group_text(reason, n, places) for reason, (n, places) in groups]
            if len(lines) == 1:
                print(f"  ... and {more} more: {lines[0]}", file=file)
            else:
                print(f"  ... and {more} more:", file=file)
                for line in lines:
                    print(f"    {line}", file=file)


def skip_reason(text: str) -> str:
    """What a skip message (its place cut off) says, for grouping skips: without the chain's name and with
    every number as N ("chain 'c7': 900 tokens exceed ..." -> "N tokens exceed ..."); duplicate ids group as
    "duplicate id"."""
    text = re.sub(r"^chain (?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\(no id\)): ", "", text)
    if text.startswith("duplicate id "):
        return "duplicate id"
    return re.sub(r"\d+", "N", text)


def _group_text(reason: str, n: int, places: list[str]) -> str:
    """ "lines 7, 9, 12: <reason>", "lines 4, 5, ..., 13, ... (27 in all): <reason>", "2 chain(s): <reason>"."""
    if not places:
        return f"{n} chain(s): {reason}"
    shown = ", ".join(places) + (f", ... ({n} in all)" if n > len(places) else "")
    return f"{'line' if n == 1 else 'lines'} {shown}: {reason}"


def no_chain_read(inp: str | Path, skips: Skips) -> ValueError:
    """The error of a predict/prune run none of whose input lines could be read."""
    return ValueError(f"{inp}: no chain could be read ({skips.total} line(s) skipped); nothing written")


class StreamedChains:
    """Iterate the valid chains of a JSONL file one by one; malformed lines (bad UTF-8, bad JSON,
    bad fields) and duplicate ids are counted in `skips`; `read` counts the chains yielded."""

    def __init__(self, path: str | Path, skips: Skips, limit: int | None = None):
        self.inp, self.path, self.skips, self.limit = path, Path(path), skips, limit
        self.read = 0
        self.where: dict[str, str] = {}  # chain id -> "file:line" of the chains yielded

    def __iter__(self) -> Iterator[Chain]:
        seen: set[str] = set()
        k = 0
        for lineno, obj in iter_jsonl_lines(self.path):
            if self.limit is not None and k >= self.limit:
                return
            k += 1
            where = f"{self.path}:{lineno}"
            try:
                if isinstance(obj, ChainFormatError):
                    raise obj
                c = Chain.from_mapping(obj, where)
            except ChainFormatError as e:
                self.skips.add("not valid UTF-8" if "not valid UTF-8" in str(e) else "malformed JSONL line", str(e))
                continue
            if not c.id:
                c = Chain(c.question, c.reasoning, c.answer, f"{self.path.stem}-{lineno}", c.extra)
            if c.id in seen:
                self.skips.add("duplicate id", f"{where}: duplicate id {c.id!r}")
                continue
            seen.add(c.id)
            self.where[c.id] = where
            self.read += 1
            yield c

    def check_read(self) -> None:
        """ValueError if no line of the input could be read (after a full pass)."""
        if self.read == 0:
            self.skips.report()
            raise no_chain_read(self.inp, self.skips)


# what label's reader says of a JSON array or a messages record, which predict / prune read
LABEL_INPUT_HINT = ("label reads JSON Lines chains with id, question, reasoning, answer; predict/prune also read "
                    "JSON arrays and messages records: `predictor prune --help`")


def with_format_hint(path: Path, err: ChainFormatError) -> ChainFormatError:
    """`err` (strict reading of a chains file failed) with `LABEL_INPUT_HINT` added when the file is in a
    format that predict / prune read and label does not: a JSON array of records, or a messages record
    (the first record that is no chain, as `read_chains` stopped at); else `err` itself."""
    from ..record_fields import detect_format
    from ..record_files import is_json_array_file

    if is_json_array_file(path):
        return ChainFormatError(f"{path}: a JSON array of records, not JSON Lines; {LABEL_INPUT_HINT}")
    for lineno, obj in iter_jsonl_lines(path):
        if isinstance(obj, ChainFormatError):
            return err
        try:
            Chain.from_mapping(obj, f"{path}:{lineno}")
        except ChainFormatError:
            if isinstance(obj, list) or detect_format(obj) == "messages":
                kind = "a JSON array" if isinstance(obj, list) else "a messages record"
                return ChainFormatError(f"{err} ({kind}); {LABEL_INPUT_HINT}")
            return err
    return err


class ChainList:
    """All chains of a JSONL file, strictly read (`chains.read_chains`: a bad line is an error; a JSON
    array or a messages record says what reads it), then the first `limit`, then those with index
    % N == i for `shard` = (i, N)."""

    def __init__(self, path: str | Path, limit: int | None = None, shard: tuple[int, int] = (0, 1)):
        try:
            chains = read_chains_with_lines(path)
        except ChainFormatError as e:
            raise with_format_hint(Path(path), e) from None
        chains = chains if limit is None else chains[:limit]
        i, n = shard
        kept = [(line, c) for k, (line, c) in enumerate(chains) if k % n == i]
        self.chains = [c for _, c in kept]
        self.read = len(self.chains)
        self.where = {c.id: f"{path}:{line}" for line, c in kept}  # chain id -> "file:line" (skip messages)

    def __iter__(self) -> Iterator[Chain]:
        return iter(self.chains)

    def check_read(self) -> None:
        """An empty list is a run with nothing to do, not an error."""


def count_lines(path: str | Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


class AtomicResumableOutput:
    """Append records to OUT.partial (resumable, fsynced); on success rename it over OUT atomically.

    A previous complete OUT seeds the partial file, so its ids are skipped too; OUT itself is only
    ever replaced whole. `match`: the run's settings, stored in every record; resuming output written
    with other settings (another scorer, budget, refresh) is refused rather than silently reused.
    `content`: record -> the content hash of its chain (`ChainJob.record_hash`), for `check_content`.
    `words`: says a differing setting in the command's options (`jsonl_io.check_settings`)."""

    def __init__(self, out: str | Path, match: dict[str, Any] | None = None,
                 content: Callable[[dict[str, Any]], str | None] | None = None, words: SettingWordsFn | None = None):
        self.out, self.partial = Path(out), partial_path(out)
        if not self.partial.exists() and self.out.exists():
            shutil.copyfile(self.out, self.partial)
        try:
            self.writer = ResumableJsonlWriter(self.partial, match=match, content=content, words=words)
        except ValueError as e:  # written with other settings: name OUT, not the scratch file
            raise ValueError(self._name_out(e)) from None
        self.done = self.writer.done
        self.resumed = len(self.done)

    def _name_out(self, e: Exception) -> str:
        return str(e).replace(str(self.partial), str(self.out))

    def is_done(self, chain: Chain) -> bool:
        return chain.id in self.done

    def check_content(self, chain: Chain) -> None:
        """Refuse to resume the finished record of `chain` if the chain's content changed since."""
        try:
            self.writer.check_content(chain.id, chain.content_hash)
        except ValueError as e:
            raise ValueError(self._name_out(e)) from None

    def write(self, record: dict[str, Any]) -> None:
        self.writer.write(record)

    def __enter__(self) -> "AtomicResumableOutput":
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.writer.close()
        if exc_type is None:
            os.replace(self.partial, self.out)
        elif self.partial.stat().st_size == 0:
            self.partial.unlink()  # nothing was written: leave no empty scratch file


class InPlaceOutput:
    """Append records to OUT itself (resumable, fsynced line by line): records are identified by
    `key` (fields), `chain_key` gives the key a chain's record will have."""

    def __init__(self, out: str | Path, key: tuple[str, ...], chain_key: Callable[[Chain], tuple[str, ...]],
                 match: dict[str, Any] | None = None, content: Callable[[dict[str, Any]], str | None] | None = None):
        self.writer = ResumableJsonlWriter(out, key=key, match=match, content=content)
        self.chain_key = chain_key
        self.done = self.writer.done
        self.resumed = len(self.done)

    def is_done(self, chain: Chain) -> bool:
        return self.chain_key(chain) in self.done

    def check_content(self, chain: Chain) -> None:
        self.writer.check_content(self.chain_key(chain), chain.content_hash)

    def write(self, record: dict[str, Any]) -> None:
        self.writer.write(record)

    def __enter__(self) -> "InPlaceOutput":
        return self

    def __exit__(self, *_) -> None:
        self.writer.close()


def report_over_budget(ids: list[str]) -> None:
    """Say on stderr how many chains kept more tokens than their budget (prune's protected tokens, or
    whole units that cannot make the budget exactly)."""
    if ids:
        print(f"{len(ids)} chain(s) kept more tokens than the budget: their protected tokens or whole units "
              f"(a character or tag spread over several tokens) need more (field 'budget' < len(kept)), "
              f"e.g. {', '.join(ids[:3])}", file=sys.stderr)
