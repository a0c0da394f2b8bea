"""The main job in a few minutes: the shipped predictor ranks the held-out chains of the ranked GSM8K file
next to the one-pass baselines (Spearman with greedy, 95% bootstrap intervals), prunes one chain at a
few budgets, writes a token heatmap of it (OUT/heatmap.html, OUT/heatmap.png), and trains a small
LightGBM predictor on a subset of the training chains to score the same held-out chains.

    predictor demo --out runs/demo
"""
from __future__ import annotations

import argparse

HELP = "a few-minute tour: rank, prune, heatmap and a small training run on the shipped data"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..demo import DEMO_DATA, DemoConfig
    from .common import add_threads_argument

    p.add_argument("--data", default=DEMO_DATA, help="ranked JSONL (default: %(default)s)")
    p.add_argument("--out", default="runs/demo", help="folder for the heatmap (default: %(default)s)")
    p.add_argument("--train-chains", type=int, default=30,
                   help="training chains of the small predictor (default: %(default)s)")
    add_threads_argument(p, default=DemoConfig.threads, also=" and LightGBM's")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ..demo import DemoConfig, run_demo

    if args.train_chains < 2:
        raise ValueError(f"--train-chains must be >= 2, got {args.train_chains}")
    run_demo(DemoConfig(data=args.data, out=args.out, train_chains=args.train_chains, threads=args.threads,
                        progress=not args.no_progress))
    return 0
