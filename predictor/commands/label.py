"""Label chains with the exact greedy pruning order (the oracle the predictors learn).

Writes one ranked record per chain (schema: shared/DESIGN.md), appended and fsynced line by line.
Re-running with the same --out resumes: finished ids are skipped, and a line cut by a kill is
dropped, so Ctrl-C loses at most the chain in progress. A re-run refuses to resume a record whose
input chain has changed since (question, reasoning or answer differ). Chains that cannot be scored
(empty reasoning, longer than the LM's context, more reasoning tokens than --max-tokens) are skipped
with a counted reason. The progress bar counts the search's cost (`search_cost`, ~n^3/6 token
positions per chain of n reasoning tokens), so its time estimate holds when long chains follow short ones.

--stride K > 1 deletes the K best tokens per step: about K times faster, but approximate.
"""
from __future__ import annotations

import argparse
import sys

from ..engines.cli_args import add_engine_arguments
from .common import add_lm_arguments, parse_shard

HELP = "run the exact greedy search on a chains file -> ranked JSONL (resumable)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", required=True, help="chains JSONL (id, question, reasoning, answer)")
    p.add_argument("--out", required=True, help="ranked JSONL to append to (resumes if it exists)")
    add_lm_arguments(p)
    p.add_argument("--objective", choices=["joint", "answer"], default="joint",
                   help="joint = log P(R_kept, A | Q) (default); answer = log P(A | Q, R_kept)")
    p.add_argument("--stride", type=int, default=1, help="tokens deleted per step; >1 is approximate (default 1)")
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/N",
                   help="label only chains with index %% N == i (run N processes in parallel; default 0/1: all chains)")
    p.add_argument("--limit", type=int, default=None, help="label at most this many chains of the input")
    p.add_argument("--batch-tokens", type=int, default=None, help="candidate tokens per forward (default: auto)")
    p.add_argument("--max-tokens", type=int, default=None, metavar="N",
                   help="skip chains with more than N reasoning tokens (the search's cost grows ~n^3)")
    add_engine_arguments(p)


def search_cost(n: int, answer_len: int, stride: int = 1) -> float:
    """Token positions the greedy search runs through for n reasoning tokens (prefix KV reuse): step
    k scores m = n - k candidates, candidate j re-running the m - j kept tokens after it and the
    answer, so ~sum_m (m^2 / 2 + m * answer_len) = n^3 / 6 + n^2 * answer_len / 2, over `stride`."""
    steps = range(n, 0, -max(1, stride))
    return float(sum(m * m / 2 + m * answer_len for m in steps))


def _check_existing_layout(path: str, lm) -> None:
    """Refuse to append to a file whose first record was encoded differently (e.g. another eos token):
    the labels of one file must share one layout."""
    import json
    from pathlib import Path

    from ..ranked import layout_mismatch

    if not Path(path).is_file():
        return
    with open(path, encoding="utf-8") as f:
        line = f.readline()
    if not line.endswith("\n"):
        return  # empty, or a first line cut by a kill: the writer drops it
    diff = layout_mismatch(json.loads(line), lm.tokenizer, lm.max_length)
    if diff:
        raise ValueError(f"{path}:1: field {diff} differs from this tokenizer's encoding of the chain; "
                         "new labels would mix two layouts: write to another file")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..chains import read_chains
    from ..engines.jobs import LabelJob
    from ..jsonl_io import ResumableJsonlWriter
    from ..layout import ChainError
    from ..objective import check_objective

    check_objective(args.objective)
    if args.stride < 1:
        raise ValueError(f"--stride must be >= 1, got {args.stride}")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ValueError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    if args.engine == "ray":
        from ..engines.ray_data import run_ray

        return run_ray(LabelJob(args), args)
    chains = read_chains(args.inp)
    if args.limit is not None:
        chains = chains[: args.limit]
    i, n = args.shard
    chains = [c for k, c in enumerate(chains) if k % n == i]
    job = LabelJob(args)
    job.load()
    _check_existing_layout(args.out, job.lm)
    skipped: list[str] = []
    # one file may hold both objectives, never two LMs or strides
    with ResumableJsonlWriter(args.out, key=("id", "objective"), match=job.settings(),
                              content=job.record_hash) as out:
        for c in chains:
            out.check_content(job.chain_key(c), c.content_hash)
        todo = [c for c in chains if job.chain_key(c) not in out.done]
        cost = {}
        for c in todo:
            try:
                cost[c.id] = job.cost(c)
            except ChainError as e:
                skipped.append(str(e))
        todo = [c for c in todo if c.id in cost]
        print(f"{len(chains)} chains, {len(chains) - len(todo) - len(skipped)} already done, "
              f"{len(todo)} to label, {len(skipped)} skipped", file=sys.stderr)
        bar = tqdm(total=sum(cost.values()), dynamic_ncols=True, desc="labeling",
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")
        for k, c in enumerate(todo, 1):
            rec = job.record(c)
            out.write(rec)
            bar.set_postfix_str(f"{k}/{len(todo)} chains, last {c.id} n={len(rec['order'])} {rec['seconds']:.1f}s",
                                refresh=False)
            bar.update(cost[c.id])
        bar.close()
    for reason in skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    print(f"labeled {len(todo)} chains into {args.out}; skipped {len(skipped)}", file=sys.stderr)
    return 0
