"""Label chains with the exact greedy pruning order (the oracle the predictors learn).

Writes one ranked record per chain (schema: shared/DESIGN.md), appended and fsynced line by line.
Re-running with the same --out resumes: finished ids are skipped, and a line cut by a kill is
dropped, so Ctrl-C loses at most the chain in progress. Chains that cannot be scored (empty
reasoning, longer than the LM's context) are skipped with a counted reason.

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
                   help="label only chains with index %% N == i (run N processes in parallel)")
    p.add_argument("--limit", type=int, default=None, help="label at most this many chains of the input")
    p.add_argument("--batch-tokens", type=int, default=None, help="candidate tokens per forward (default: auto)")
    add_engine_arguments(p)


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
    from ..layout import ChainError, encode_chain
    from ..objective import check_objective

    check_objective(args.objective)
    if args.stride < 1:
        raise ValueError(f"--stride must be >= 1, got {args.stride}")
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
    lm = job.lm
    _check_existing_layout(args.out, lm)
    skipped: list[str] = []
    # one file may hold both objectives, never two LMs or strides
    with ResumableJsonlWriter(args.out, key=("id", "objective"),
                              match=job.settings()) as out:
        todo = [c for c in chains if (c.id, args.objective) not in out.done]
        sizes = {}
        for c in todo:
            try:
                sizes[c.id] = encode_chain(lm.tokenizer, c, lm.max_length).n
            except ChainError as e:
                skipped.append(str(e))
        todo = [c for c in todo if c.id in sizes]
        print(f"{len(chains)} chains, {len(chains) - len(todo) - len(skipped)} already done, "
              f"{len(todo)} to label, {len(skipped)} skipped", file=sys.stderr)
        bar = tqdm(total=sum(sizes.values()), unit="tok", desc="labeling", dynamic_ncols=True)
        for c in todo:
            rec = job.record(c)
            out.write(rec)
            bar.update(len(rec["order"]))
            bar.set_postfix(chain=c.id, n=len(rec["order"]), s=f"{rec['seconds']:.1f}")
        bar.close()
    for reason in skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    print(f"labeled {len(todo)} chains into {args.out}; skipped {len(skipped)}", file=sys.stderr)
    return 0
