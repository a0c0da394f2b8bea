"""Predict the greedy pruning ranks of every chain in a JSONL file, with one forward pass per chain.

Writes one JSON line per chain: id, n, ranks (1 = pruned first), order (token indices in pruning
order), tokens (decoded), scorer, lm (fingerprint), refresh. The ranking comes from the shipped
pretrained predictor (default), a trained predictor directory (--predictor DIR) or any registered
scorer (--scorer NAME: baselines, or `greedy` for the exact oracle). A re-run on an existing --out
with other settings (scorer, LM, refresh) is refused instead of silently reusing the old records.

Streaming and resumable: chains are read line by line and each record is appended (fsynced) to
OUT.partial; a re-run skips finished ids, and OUT is replaced atomically once the input is done.
The input is never overwritten. Malformed lines, empty reasonings and chains longer than the LM's
context are skipped and counted with their reasons.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import add_lm_arguments

HELP = "rank the reasoning tokens of a chains file with a predictor or scorer (resumable)"
BATCH = 32  # chains ranked together (written together once ranked)


def add_predictor_arguments(p: argparse.ArgumentParser) -> None:
    """--scorer / --predictor / --refresh and the LM options (shared with `predictor prune`)."""
    from ..scorers import DIRECTORY_SCORERS, SCORERS

    g = p.add_mutually_exclusive_group()
    g.add_argument("--scorer", choices=[s for s in SCORERS if s not in DIRECTORY_SCORERS],
                   help="rank with a registered scorer instead of a learned predictor")
    g.add_argument("--predictor", metavar="DIR", help="trained predictor directory (default: the shipped one)")
    p.add_argument("--refresh", type=int, default=1, metavar="K",
                   help="forward passes per chain: re-score the survivors K times (default 1)")
    p.add_argument("--no-check-lm", action="store_true",
                   help="use a predictor with an LM other than the one it was trained for")
    p.add_argument("--limit", type=int, default=None, help="process at most this many input chains")
    p.add_argument("--batch", type=int, default=BATCH, metavar="N",
                   help=f"chains read and ranked together, several per forward pass (default {BATCH}; "
                        "the pass size follows a token budget)")
    add_lm_arguments(p)


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

    def add_chain_error(self, err: Exception) -> None:
        from ..layout import EmptyReasoningError, TooLongError
        from ..pruning import BudgetError

        kinds = {TooLongError: "too long for the LM", EmptyReasoningError: "empty reasoning",
                 BudgetError: "budget impossible with protected tokens"}
        self.add(next((v for k, v in kinds.items() if isinstance(err, k)), "unscorable"), str(err))

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


def stream_chains(path: str | Path, skips: Skips, limit: int | None = None) -> Iterator[Any]:
    """Yield valid chains of a JSONL file one by one; malformed lines and duplicate ids are skipped."""
    from ..chains import Chain, ChainFormatError

    path = Path(path)
    seen: set[str] = set()
    k = 0
    with path.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            if limit is not None and k >= limit:
                return
            k += 1
            where = f"{path}:{lineno}"
            try:
                c = Chain.from_mapping(json.loads(line), where)
            except json.JSONDecodeError as e:
                skips.add("malformed JSONL line", f"{where}: invalid JSON ({e.msg} at column {e.colno})")
                continue
            except ChainFormatError as e:
                skips.add("malformed JSONL line", str(e))
                continue
            if not c.id:
                c = Chain(c.question, c.reasoning, c.answer, f"{path.stem}-{lineno}", c.extra)
            if c.id in seen:
                skips.add("duplicate id", f"{where}: duplicate id {c.id!r}")
                continue
            seen.add(c.id)
            yield c


class AtomicResumableOutput:
    """Append records to OUT.partial (resumable, fsynced); on success rename it over OUT atomically.

    A previous complete OUT seeds the partial file, so its ids are skipped too; OUT itself is only
    ever replaced whole. `match`: the run's settings, stored in every record; resuming output written
    with other settings (another scorer, budget, refresh) is refused rather than silently reused."""

    def __init__(self, out: str | Path, match: dict[str, Any] | None = None):
        from ..jsonl_io import ResumableJsonlWriter

        self.out, self.partial = Path(out), partial_path(out)
        if not self.partial.exists() and self.out.exists():
            shutil.copyfile(self.out, self.partial)
        try:
            self.writer = ResumableJsonlWriter(self.partial, match=match)
        except ValueError as e:  # written with other settings: name OUT, not the scratch file
            raise ValueError(str(e).replace(str(self.partial), str(self.out))) from None
        self.done = self.writer.done
        self.resumed = len(self.done)

    def write(self, record: dict[str, Any]) -> None:
        self.writer.write(record)

    def __enter__(self) -> "AtomicResumableOutput":
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.writer.close()
        if exc_type is None:
            os.replace(self.partial, self.out)


def _records(rp, chains: list, make_records, skips: Skips) -> list[dict[str, Any]]:
    """Records of chains ranked together; unscorable chains are skipped (and counted) one by one."""
    from ..layout import ChainError, encode_chain

    ok = []
    for c in chains:
        try:
            encode_chain(rp.lm.tokenizer, c, rp.lm.max_length)
            ok.append(c)
        except ChainError as e:
            skips.add_chain_error(e)
    try:
        return make_records(rp, ok) if ok else []
    except ChainError:  # one chain's problem (e.g. an impossible budget): the others still get their records
        out = []
        for c in ok:
            try:
                out += make_records(rp, [c])
            except ChainError as e:
                skips.add_chain_error(e)
        return out


def run_stream(args: argparse.Namespace, make_records, desc: str, settings=None) -> int:
    """Shared driver: validate paths, load the predictor, stream chains -> records, report skips.

    make_records(rp, chains) -> one record per chain (chains ranked together, --batch at a time).
    settings(rp) -> dict: the run's settings, added to every record and required to match on resume."""
    from tqdm import tqdm

    check_paths(args.inp, args.out)
    if args.refresh < 1:
        raise ValueError(f"--refresh must be >= 1 (forward passes per chain), got {args.refresh}")
    batch = getattr(args, "batch", BATCH)
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    rp = load_predictor_from_args(args)
    skips = Skips()
    written = 0
    total = count_lines(args.inp)
    if args.limit is not None:
        total = min(total, args.limit)
    fixed = {"scorer": rp.name, "lm": rp.lm.fingerprint, **(settings(rp) if settings else {})}
    with AtomicResumableOutput(args.out, match=fixed) as out:
        bar = tqdm(total=total, unit="chain", desc=desc, dynamic_ncols=True, file=sys.stderr)
        pending: list = []

        def flush() -> None:
            nonlocal written
            for rec in _records(rp, pending, make_records, skips):
                out.write({**rec, **fixed})
                written += 1
            bar.update(len(pending))
            pending.clear()

        for chain in stream_chains(args.inp, skips, args.limit):
            if chain.id in out.done:
                bar.update(1)
                continue
            pending.append(chain)
            if len(pending) >= batch:
                flush()
        flush()
        bar.update(total - bar.n)
        bar.close()
        resumed = out.resumed
    skips.report()
    print(f"{desc}: wrote {written} chain(s) to {args.out} with {rp!r}; {resumed} already done; "
          f"{skips.total} skipped", file=sys.stderr)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", required=True, help="chains JSONL (id, question, reasoning, answer)")
    p.add_argument("--out", required=True, help="ranks JSONL (resumes if OUT.partial or OUT exists)")
    add_predictor_arguments(p)


def predict_records(rp, chains: list, refresh: int) -> list[dict[str, Any]]:
    """One record per chain, the chains ranked together."""
    import numpy as np

    from ..layout import encode_chain

    ids = [encode_chain(rp.lm.tokenizer, c, rp.lm.max_length).reasoning_ids for c in chains]  # ChainError first
    return [{
        "id": c.id, "n": len(ranks), "ranks": ranks.tolist(),
        "order": np.argsort(ranks, kind="stable").tolist(),
        "tokens": [rp.lm.tokenizer.decode([t]) for t in lay_ids],
    } for c, lay_ids, ranks in zip(chains, ids, rp.predict_ranks(chains, refresh=refresh))]
    # scorer, lm and refresh: added by run_stream, which also checks them on resume


def run(args: argparse.Namespace) -> int:
    return run_stream(args, lambda rp, cs: predict_records(rp, cs, args.refresh), "predict",
                      settings=lambda rp: {"refresh": args.refresh})
