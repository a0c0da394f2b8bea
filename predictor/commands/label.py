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

from .common import add_lm_arguments, load_lm_from_args, parse_shard

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
    p.add_argument("--max-tokens", type=int, default=None, metavar="N",
                   help="skip chains with more than N reasoning tokens (the search's cost grows ~n^3)")


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
    from ..cpu_matmul import uses_onednn
    from ..greedy import greedy_prune
    from ..chains import chain_hash
    from ..jsonl_io import ResumableJsonlWriter
    from ..layout import ChainError, encode_chain
    from ..objective import check_objective
    from ..ranked import ranked_record

    check_objective(args.objective)
    if args.stride < 1:
        raise ValueError(f"--stride must be >= 1, got {args.stride}")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ValueError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    chains = read_chains(args.inp)
    if args.limit is not None:
        chains = chains[: args.limit]
    i, n = args.shard
    chains = [c for k, c in enumerate(chains) if k % n == i]
    lm = load_lm_from_args(args)
    _check_existing_layout(args.out, lm)
    matmul = "onednn" if uses_onednn(lm.model) else None
    skipped: list[str] = []
    # one file may hold both objectives, never two LMs or strides
    def content(rec: dict) -> str:  # ranked records store their chain's texts
        return chain_hash(*(str(rec.get(f, "")) for f in ("question", "reasoning", "answer")))

    with ResumableJsonlWriter(args.out, key=("id", "objective"), match={"lm": lm.fingerprint, "stride": args.stride},
                              content=content) as out:
        for c in chains:
            out.check_content((c.id, args.objective), c.content_hash)
        todo = [c for c in chains if (c.id, args.objective) not in out.done]
        cost = {}
        for c in todo:
            try:
                lay = encode_chain(lm.tokenizer, c, lm.max_length)
            except ChainError as e:
                skipped.append(str(e))
                continue
            if args.max_tokens is not None and lay.n > args.max_tokens:
                skipped.append(f"chain {c.id!r}: {lay.n} reasoning tokens, more than --max-tokens {args.max_tokens}")
                continue
            cost[c.id] = search_cost(lay.n, len(lay.answer_ids), args.stride)
        todo = [c for c in todo if c.id in cost]
        print(f"{len(chains)} chains, {len(chains) - len(todo) - len(skipped)} already done, "
              f"{len(todo)} to label, {len(skipped)} skipped", file=sys.stderr)
        bar = tqdm(total=sum(cost.values()), dynamic_ncols=True, desc="labeling",
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")
        for k, c in enumerate(todo, 1):
            res = greedy_prune(lm, c, args.objective, args.stride, args.batch_tokens)
            out.write(ranked_record(c, res, lm.fingerprint, args.objective, args.stride, lm.tokenizer,
                                   device=lm.device.type, matmul=matmul))
            bar.set_postfix_str(f"{k}/{len(todo)} chains, last {c.id} n={len(res.order)} {res.seconds:.1f}s",
                                refresh=False)
            bar.update(cost[c.id])
        bar.close()
    for reason in skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    print(f"labeled {len(todo)} chains into {args.out}; skipped {len(skipped)}", file=sys.stderr)
    return 0
