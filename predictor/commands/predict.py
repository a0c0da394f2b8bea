"""Predict the greedy pruning ranks of every chain in a JSONL file, with one forward pass per chain.

Writes one JSON line per chain: id, n, ranks (1 = pruned first), order (token indices in pruning
order), tokens, scorer, lm (fingerprint), refresh. `tokens` holds the exact text of each of the n
reasoning tokens: "".join(tokens) is the decoded reasoning (with the shipped LM's tokenizer: the
input's reasoning without its surrounding whitespace). A CJK character or emoji whose UTF-8 bytes are
spread over several tokens is the text of the token that completes it; the tokens before it get ""
(or the whole characters they hold), never U+FFFD.

The ranking comes from the shipped pretrained predictor (default), a trained predictor directory
(--predictor DIR) or any registered scorer (--scorer NAME: baselines, or `greedy` for the exact
oracle). A re-run on an existing --out with other settings (scorer, LM, refresh) is refused instead
of silently reusing the old records.

Streaming and resumable: chains are read line by line and each record is appended (fsynced) to
OUT.partial; a re-run skips finished ids, and OUT is replaced atomically once the input is done.
The input is never overwritten. Malformed lines (not valid UTF-8, invalid JSON, bad fields), empty
reasonings and chains longer than the LM's context (with the probe, for predictors that read it)
are skipped and counted with their reasons; a file none of whose lines can be read is an error.
Fields of the input other than id/question/reasoning/answer are copied to the output records.
Every record stores `chain_hash` (the content hash of its input chain): a re-run refuses to resume
a record whose input chain has changed since.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..engines.cli_args import add_engine_arguments
from .common import add_lm_arguments

HELP = "rank the reasoning tokens of a chains file with a predictor or scorer (resumable)"
BATCH = 32  # chains ranked together (written together once ranked)


def add_predictor_arguments(p: argparse.ArgumentParser) -> None:
    """--scorer / --predictor / --refresh and the LM options (shared with `predictor prune`)."""
    from ..scorers import DIRECTORY_SCORERS, SCORERS

    g = p.add_mutually_exclusive_group()
    g.add_argument("--scorer", choices=[s for s in SCORERS if s not in DIRECTORY_SCORERS],
                   help="rank with a registered scorer instead of a learned predictor")
    g.add_argument("--predictor", metavar="DIR", help="trained predictor directory or shipped name (smollm2-joint, gemma3-270m-joint, universal; default: the shipped one trained for --model)")
    p.add_argument("--refresh", type=int, default=1, metavar="K",
                   help="forward passes per chain: re-score the survivors K times (default 1)")
    p.add_argument("--no-check-lm", action="store_true",
                   help="use a predictor with an LM other than the one it was trained for")
    p.add_argument("--limit", type=int, default=None, help="process at most this many input chains")
    p.add_argument("--batch", type=int, default=BATCH, metavar="N",
                   help=f"chains read and ranked together, several per forward pass (default {BATCH}; "
                        "the pass size follows a token budget; --engine local only: Ray workers rank "
                        "one chain at a time)")
    add_lm_arguments(p)
    add_engine_arguments(p)


def load_predictor_from_args(args: argparse.Namespace):
    """The RankPredictor the arguments name (the LM is loaded once)."""
    import torch

    from ..lm import load_lm
    from ..rank_predictor import RankPredictor

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_lm(args.model, device=args.device) if (args.model or args.scorer) else None
    return RankPredictor.load(args.scorer or args.predictor, lm=lm, device=args.device,
                              check_lm=not args.no_check_lm)


def check_paths(inp: str, out: str) -> None:
    """Refuse to write over the input (also through OUT.partial)."""
    src = Path(inp)
    if src.is_dir():
        raise ValueError(f"{inp}: is a directory, not a chains file")
    if not src.is_file():
        raise FileNotFoundError(f"{inp}: no such input file")
    for target in (Path(out), partial_path(out)):
        if target.resolve() == src.resolve() or (target.exists() and os.path.samefile(target, src)):
            raise ValueError(f"--out {out} would overwrite the input {inp}; choose another output path")


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


class Skips:
    """Counted skipped input chains with their reasons (first examples kept for the report)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        self.examples.setdefault(kind, [])
        if len(self.examples[kind]) < 3:
            self.examples[kind].append(message)

    def add_chain_error(self, err: Exception, where: str | None = None) -> None:
        """Count a chain that could not be processed; where: its "file:line", put before the message."""
        from ..layout import EmptyReasoningError, MaxTokensError, ProbeTooLongError, TooLongError

        kinds = {ProbeTooLongError: "too long for the LM with the probe", TooLongError: "too long for the LM",
                 EmptyReasoningError: "empty reasoning", MaxTokensError: "more reasoning tokens than --max-tokens"}
        self.add(next((v for k, v in kinds.items() if isinstance(err, k)), "unscorable"),
                 f"{where}: {err}" if where else str(err))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def report(self, file=None) -> None:
        file = file or sys.stderr
        for kind, k in self.counts.most_common():
            print(f"skipped {k} chain(s): {kind}", file=file)
            for ex in self.examples[kind]:
                print(f"  e.g. {ex}", file=file)


def count_lines(path: str | Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


class StreamedChains:
    """Iterate the valid chains of a JSONL file one by one; malformed lines (bad UTF-8, bad JSON,
    bad fields) and duplicate ids are counted in `skips`; `read` counts the chains yielded."""

    def __init__(self, path: str | Path, skips: Skips, limit: int | None = None):
        self.path, self.skips, self.limit = Path(path), skips, limit
        self.read = 0
        self.where: dict[str, str] = {}  # chain id -> "file:line" of the chains yielded

    def __iter__(self) -> Iterator[Any]:
        from ..chains import Chain, ChainFormatError, iter_jsonl_lines

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


def stream_chains(path: str | Path, skips: Skips, limit: int | None = None) -> Iterator[Any]:
    """Yield valid chains of a JSONL file one by one (see `StreamedChains`)."""
    return iter(StreamedChains(path, skips, limit))


class AtomicResumableOutput:
    """Append records to OUT.partial (resumable, fsynced); on success rename it over OUT atomically.

    A previous complete OUT seeds the partial file, so its ids are skipped too; OUT itself is only
    ever replaced whole. `match`: the run's settings, stored in every record; resuming output written
    with other settings (another scorer, budget, refresh) is refused rather than silently reused.
    `content`: record -> the content hash of its chain (`ChainJob.record_hash`), for `check_content`."""

    def __init__(self, out: str | Path, match: dict[str, Any] | None = None,
                 content: Callable[[dict[str, Any]], str | None] | None = None):
        from ..jsonl_io import ResumableJsonlWriter

        self.out, self.partial = Path(out), partial_path(out)
        if not self.partial.exists() and self.out.exists():
            shutil.copyfile(self.out, self.partial)
        try:
            self.writer = ResumableJsonlWriter(self.partial, match=match, content=content)
        except ValueError as e:  # written with other settings: name OUT, not the scratch file
            raise ValueError(self._name_out(e)) from None
        self.done = self.writer.done
        self.resumed = len(self.done)

    def _name_out(self, e: Exception) -> str:
        return str(e).replace(str(self.partial), str(self.out))

    def check_content(self, chain) -> None:
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


def _finished_before_loading(args: argparse.Namespace, desc: str, job) -> bool:
    """Refuse an output of other settings, and finish a run whose every input chain is done, before the LM
    loads (job.static_settings(): the settings that do not depend on the loaded predictor)."""
    from .resume_check import done_ids_matching, expected_scorer_name

    match = {"scorer": expected_scorer_name(args), **job.static_settings()}
    done, clean = done_ids_matching(Path(args.out), partial_path(args.out), match)
    # a chain not done yet, or whose content changed since (the full path refuses that with its message);
    # a cut last line is left to the writer to cut off
    if not done or not clean or any(done.get(c.id, "") != c.content_hash for c in stream_chains(args.inp, Skips(), args.limit)):
        return False
    if partial_path(args.out).exists():
        os.replace(partial_path(args.out), args.out)
    print(f"{desc}: wrote 0 chain(s) to {args.out}; {len(done)} already done (nothing left: the LM was not loaded)",
          file=sys.stderr)
    return True


def no_chain_read(inp: str, skips: Skips) -> ValueError:
    """The error of a predict/prune run none of whose input lines could be read."""
    return ValueError(f"{inp}: no chain could be read ({skips.total} line(s) skipped); nothing written")


def report_over_budget(ids: list[str]) -> None:
    """Say on stderr how many chains kept more tokens than their budget (prune's protected tokens, or
    whole units that cannot make the budget exactly)."""
    if ids:
        print(f"{len(ids)} chain(s) kept more tokens than the budget: their protected tokens or whole units "
              f"(a character or tag spread over several tokens) need more (field 'budget' < len(kept)), "
              f"e.g. {', '.join(ids[:3])}", file=sys.stderr)


def run_stream(args: argparse.Namespace, job, desc: str) -> int:
    """Shared driver: validate paths, load the predictor, stream chains -> records, report skips.

    job: the command's `engines.jobs` job (loads the predictor; chains -> records with the run's
    settings, which must match on resume; --batch chains at a time through `job.records`, several per
    forward pass). --engine ray hands the same job to `engines.ray_data` (one chain per `job.record`)."""
    from tqdm import tqdm

    from ..layout import ChainError

    check_paths(args.inp, args.out)
    if args.refresh < 1:
        raise ValueError(f"--refresh must be >= 1 (forward passes per chain), got {args.refresh}")
    batch = getattr(args, "batch", BATCH)
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    if args.engine == "ray":
        from ..engines.ray_data import run_ray

        return run_ray(job, args)
    if _finished_before_loading(args, desc, job):
        return 0
    job.load()
    rp = job.rp
    skips = Skips()
    written = 0
    total = count_lines(args.inp)
    if args.limit is not None:
        total = min(total, args.limit)
    fixed = job.settings()
    chains = StreamedChains(args.inp, skips, args.limit)
    over_budget: list[str] = []
    with AtomicResumableOutput(args.out, match=fixed, content=job.record_hash) as out:
        bar = tqdm(total=total, unit="chain", desc=desc, dynamic_ncols=True, file=sys.stderr)
        pending: list = []

        def flush() -> None:
            nonlocal written
            for chain, rec in zip(pending, job.records(pending)):
                if isinstance(rec, ChainError):
                    skips.add_chain_error(rec, chains.where.get(chain.id))
                    continue
                if job.over_budget(rec):
                    over_budget.append(chain.id)
                out.write(rec)
                written += 1
            pending.clear()

        for chain in chains:
            bar.update(1)
            if chain.id in out.done:
                out.check_content(chain)
                continue
            pending.append(chain)
            if len(pending) >= batch:
                flush()
        flush()
        bar.update(total - bar.n)
        bar.close()
        resumed = out.resumed
        if chains.read == 0:
            skips.report()
            raise no_chain_read(args.inp, skips)
    skips.report()
    report_over_budget(over_budget)
    print(f"{desc}: wrote {written} chain(s) to {args.out} with {rp!r}; {resumed} already done; "
          f"{skips.total} skipped", file=sys.stderr)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", required=True, help="chains JSONL (id, question, reasoning, answer)")
    p.add_argument("--out", required=True, help="ranks JSONL (resumes if OUT.partial or OUT exists)")
    add_predictor_arguments(p)


def predict_records(rp, chains: list, refresh: int) -> list[dict[str, Any]]:
    """One record per chain, the chains ranked together (raises ChainError naming the list index if
    one is unscorable)."""
    from ..layout import encode_chain

    ids = [encode_chain(rp.lm.tokenizer, c, rp.lm.max_length).reasoning_ids for c in chains]  # ChainError first
    return [_fields(rp, c, i, r) for c, i, r in zip(chains, ids, rp.predict_ranks(chains, refresh=refresh))]


def predict_record(rp, chain, refresh: int) -> dict[str, Any]:
    """The record of one chain (a ChainError names the chain, not a list index)."""
    from ..layout import encode_chain

    lay_ids = encode_chain(rp.lm.tokenizer, chain, rp.lm.max_length).reasoning_ids  # ChainError first
    return _fields(rp, chain, lay_ids, rp.predict_ranks(chain, refresh=refresh))


def _fields(rp, chain, lay_ids: list[int], ranks) -> dict[str, Any]:
    import numpy as np

    from ..token_text import token_pieces

    return {
        "id": chain.id, "n": len(ranks), "ranks": ranks.tolist(),
        "order": np.argsort(ranks, kind="stable").tolist(),
        "tokens": token_pieces(rp.lm.tokenizer, lay_ids),
    }  # extra input fields, chain_hash, scorer, lm, refresh: added by engines.jobs.PredictJob


def run(args: argparse.Namespace) -> int:
    from ..engines.jobs import PredictJob

    return run_stream(args, PredictJob(args), "predict")
