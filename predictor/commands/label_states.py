"""Label the states a predictor reaches by its own pruning with the exact greedy search.

For each ranked chain (optionally one split only), the predictor deletes the fraction of tokens it
ranks lowest, and the greedy search runs from the survivors (predictor/policy_states.py). Output:
one state record per (chain, fraction), appended and fsynced; re-running resumes (state ids name the
predictor by a hash of its predictor.json). Train on them with `predictor train --policy-states FILE`,
or measure what `refresh` can gain with `benchmarks/refresh_diagnosis.py`.

    predictor label-states --ranked data/ranked/gsm8k-smollm2-joint.jsonl --split train \\
        --fractions 0.5 --out data/ranked/policy-states/gsm8k-smollm2-joint.jsonl
"""
from __future__ import annotations

import argparse
import sys

from ..engines.cli_args import apply_matmul, load_lm_from_args
from .common import add_lm_arguments, comma_list, parse_shard, positive_int

HELP = "exact greedy labels for the states a predictor's own pruning reaches (resumable)"


def _fractions(text: str) -> tuple[float, ...]:
    fr = tuple(comma_list(float)(text))
    if not fr or not all(0 < f < 1 for f in fr):
        raise argparse.ArgumentTypeError(f"--fractions must lie in (0, 1), got {text!r}")
    return fr


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ranked", required=True, help="ranked JSONL of the parent chains (from `label`)")
    p.add_argument("--out", required=True, help="state records JSONL to append to (resumes if it exists)")
    p.add_argument("--predictor", default=None,
                   help="predictor directory that prunes (default: the shipped pretrained predictor)")
    p.add_argument("--fractions", type=_fractions, default=(0.5,),
                   help="fractions of tokens the predictor deletes first, comma-separated (default: 0.5)")
    p.add_argument("--split", choices=("all", "train", "val", "test"), default="train",
                   help="only chains of this split of the ranked file (seed 0, 70/15/15 by id; default: train)")
    p.add_argument("--objective", choices=["joint", "answer"], default="joint",
                   help="which labels of --ranked to use and which objective greedy maximizes (default: joint)")
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/N",
                   help="only chains with index %% N == i (run N processes in parallel; default 0/1: all chains)")
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many chains (after --split)")
    add_lm_arguments(p)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..jsonl_io import ResumableJsonlWriter
    from ..policy_states import label_state, policy_kept, policy_name, state_id
    from ..rank_predictor import RankPredictor
    from ..ranked import read_ranked
    from ..splits import split_ids
    from ..training_data import check_records_match_lm

    records = read_ranked(args.ranked, objective=args.objective)
    if args.split != "all":
        keep = set(split_ids([str(r["id"]) for r in records])[args.split])
        records = [r for r in records if str(r["id"]) in keep]
    i, n = args.shard
    records = [r for k, r in enumerate(records) if k % n == i][: args.limit]
    lm = load_lm_from_args(args, matmul=False)
    check_records_match_lm(records, lm)
    rp = RankPredictor.load(args.predictor, lm=lm)  # before oneDNN: a fine-tuned scorer copies the plain LM
    apply_matmul(args, lm)
    policy = policy_name(rp)
    with ResumableJsonlWriter(args.out, key="id", match={"lm": lm.fingerprint, "objective": args.objective}) as out:
        todo = [(r, f) for r in records for f in args.fractions
                if state_id(str(r["id"]), policy, f) not in out.done]
        print(f"{len(records)} chains x {len(args.fractions)} fractions, {len(todo)} states to label "
              f"(policy {policy})", file=sys.stderr)
        bar = tqdm(todo, unit="state", desc="label-states", dynamic_ncols=True)
        done = short = 0
        for rec, f in bar:
            kept = policy_kept(rp, rec, f)
            if len(kept) < 2:
                short += 1
                continue
            out.write(label_state(lm, rec, kept, f, policy, args.objective))
            done += 1
            bar.set_postfix(chain=rec["id"], m=len(kept))
    print(f"labeled {done} states into {args.out}; skipped {short} with fewer than 2 survivors", file=sys.stderr)
    return 0
