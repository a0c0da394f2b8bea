"""The local engine: the one loop that runs `label`, `predict` and `prune` in this process.

    read the input (the job's reader; skips counted) -> resume (the job's output: finished records
    are not redone, other settings or a changed chain are refused) -> load the LM once -> chains to
    records, --batch at a time (`ChainJob.records`) -> write each as it comes -> report the skips

The progress bar counts each chain to do by its cost (`ChainJob.cost`: the greedy search's token
positions for label, 1 for one-pass prediction), so its time estimate holds when long chains follow
short ones. `run_job` is the commands' one call: --engine ray hands the same job to `ray_data`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .chain_io import Skips, partial_path, report_over_budget

if TYPE_CHECKING:
    from .jobs import ChainJob


def run_job(job: ChainJob, args: argparse.Namespace) -> int:
    """Run `job` over args.inp into args.out with the engine args.engine names; 0 on success."""
    job.check_paths()
    if args.engine == "ray":
        from .ray_data import run_ray

        return run_ray(job, args)
    return run_local(job, args)


def report_crowded(ids: list[str], total: int, options=None) -> None:
    """Say on stderr how many chains spent >= 90% of their budget on protected tokens
    (`pruning_units.protection_warning`)."""
    from ..pruning_units import protection_warning

    msg = protection_warning(ids, total, getattr(options, "protect", None))
    if msg:
        print(f"warning: {msg}", file=sys.stderr)


def report_unmatched(job: ChainJob, args: argparse.Namespace, out_ids: list[str]) -> None:
    """Say on stderr how many records of OUT (their ids: `out_ids`) have no chain in the whole input
    (e.g. a chain removed from it since): they are kept, never deleted, but are not counted as done."""
    ids = {c.id for c in job.read_input(Skips(), whole=True)}
    n = sum(1 for i in out_ids if i not in ids)
    if n:
        print(f"{n} record(s) in {args.out} have no chain in {args.inp} (kept)", file=sys.stderr)


def finished_before_loading(job: ChainJob, args: argparse.Namespace) -> bool:
    """Refuse an output of other settings, and finish a run whose every input chain is done, before the LM
    loads (job.static_settings(): the settings that do not depend on the loaded predictor)."""
    from .resume_check import done_ids_matching, expected_scorer_name

    if not (Path(args.out).exists() or partial_path(args.out).exists()):
        return False  # nothing to resume
    match = {"scorer": expected_scorer_name(args), **job.static_settings()}
    done, clean = done_ids_matching(Path(args.out), partial_path(args.out), match, job.setting_words)
    if not done or not clean:
        return False
    # a chain not done yet, or whose content changed since (the full path refuses that with its message);
    # a cut last line is left to the writer to cut off
    chains = list(job.read_input(Skips()))
    if any(done.get(c.id, "") != c.content_hash for c in chains):
        return False
    if partial_path(args.out).exists():
        os.replace(partial_path(args.out), args.out)
    if len(done) > len(chains):
        report_unmatched(job, args, list(done))
    print(f"{job.command}: wrote 0 chain(s) to {args.out}; {len(chains)} already done (nothing left: the LM was "
          "not loaded)", file=sys.stderr)
    return True


def run_local(job: ChainJob, args: argparse.Namespace) -> int:
    """The local loop (see the module doc); 0 on success (errors raise)."""
    from tqdm import tqdm

    from ..layout import ChainError

    streams = getattr(job, "streams", False)  # OUT is "-" or a pipe: nothing to resume, OUT is never read
    one_pass = str(args.inp) == "-"  # standard input can be read once: each chain is done as it comes
    if job.resumes_before_loading and not streams and finished_before_loading(job, args):
        return 0
    job.load()
    note = job.start_note()  # e.g. a predictor that runs LM passes beyond the one forward pass
    skips = Skips()
    written, finished, over_budget, crowded = 0, 0, [], []
    with job.open_output() as out:
        cost, n, done = {}, 0, 0  # the chains to do and their cost; one that cannot be done is skipped here
        longest = 0  # reasoning tokens of the longest chain to do, for the note's estimate
        if not one_pass:
            first = job.read_input(Skips())  # its malformed lines are counted by the second read
            for chain in first:
                n += 1
                if out.is_done(chain):
                    out.check_content(chain)  # refused before any work
                    done += 1
                    continue
                try:
                    tokens = job.num_tokens(chain) if note else 0
                    cost[chain.id] = job.cost(chain)
                    longest = max(longest, tokens)
                except ChainError as e:
                    skips.add_chain_error(e, first.where.get(chain.id))
            if out.resumed > done:  # records of other chains (or, for label, of the other objective)
                report_unmatched(job, args, [k[0] if isinstance(k, tuple) else k for k in out.done])
            print(f"{n} chains, {done} already done, {len(cost)} to do", file=sys.stderr)
        else:
            print(f"{job.command}: reading chains from standard input as they come", file=sys.stderr)
        if note and (cost or one_pass):
            print(job.start_note(longest or None), file=sys.stderr)
        chains = job.read_input(skips)
        bar = tqdm(total=sum(cost.values()) if not one_pass else None, dynamic_ncols=True, desc=job.command,
                   file=sys.stderr, bar_format=None if one_pass else
                   "{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")
        pending: list = []

        def flush() -> None:
            nonlocal written, finished
            for chain, rec in zip(pending, job.records(pending)):
                if isinstance(rec, ChainError):
                    skips.add_chain_error(rec, chains.where.get(chain.id))
                else:
                    if job.over_budget(rec):
                        over_budget.append(chain.id)
                    if getattr(job, "crowded", None) and job.crowded(rec):
                        crowded.append(chain.id)
                    out.write(rec)
                    written += 1
                finished += 1
                bar.set_postfix_str(f"{finished}/{len(cost)} chains, last {chain.id}", refresh=False)
                bar.update(cost[chain.id])
            pending.clear()

        for chain in chains:
            if one_pass:
                try:
                    cost[chain.id] = job.cost(chain)
                except ChainError as e:
                    skips.add_chain_error(e, chains.where.get(chain.id))
                    continue
            elif chain.id not in cost:  # done, or skipped above
                continue
            pending.append(chain)
            if len(pending) >= job.batch:
                flush()
        flush()
        bar.close()
        chains.check_read()
    skips.report()
    report_over_budget(over_budget)
    report_crowded(crowded, written, getattr(job, "options", None))
    where = "standard output" if str(args.out) == "-" else args.out
    # the input's chains already done (not OUT's records of chains no longer in the input)
    print(f"{job.command}: wrote {written} chain(s) to {where} with {job.describe()}; "
          f"{out.resumed if one_pass else done} already done; {skips.total} skipped", file=sys.stderr)
    summary = job.summary()
    if summary:
        print(summary, file=sys.stderr)
    return 0
