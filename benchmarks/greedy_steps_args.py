"""Options and chain picking shared by the benchmarks that time the first greedy steps of a few chains
(`greedy_floor.py`, `cpu_matmul.py`)."""
from __future__ import annotations

import argparse


def add_greedy_steps_arguments(ap: argparse.ArgumentParser, steps: int) -> None:
    """--chains/--count/--min-n pick the chains, --steps/--repeats time them, --model/--threads set the LM."""
    ap.add_argument("--chains", default="data/chains/gsm8k-train-20-64.jsonl", help="chains JSONL")
    ap.add_argument("--count", type=int, default=2, help="chains (the first of the file with >= --min-n tokens)")
    ap.add_argument("--min-n", type=int, default=50, help="shortest reasoning length picked")
    ap.add_argument("--steps", type=int, default=steps, help="greedy steps timed per chain")
    ap.add_argument("--repeats", type=int, default=3, help="runs per path; medians are reported")
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=1)


def pick_chains(lm, args: argparse.Namespace) -> list:
    """The first --count chains of --chains whose reasoning has at least --min-n tokens under `lm`."""
    from predictor.chains import read_chains
    from predictor.layout import encode_chain

    return [c for c in read_chains(args.chains) if encode_chain(lm.tokenizer, c).n >= args.min_n][: args.count]
