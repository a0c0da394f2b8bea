"""Seconds per chain of `predict_ranks` for several predictors, timed side by side (interleaved,
median of --repeats per chain) on the same held-out chains, with the ratio to the first predictor.

    python benchmarks/predict_time.py --predictors OLD_DIR,NEW_DIR --chains 10
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    import torch

    from predictor.lm import load_lm
    from predictor.rank_predictor import RankPredictor
    from predictor.ranked import read_ranked, record_chain
    from predictor.splits import split_ids

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--predictors", required=True, help="comma-separated predictor dirs or scorer names")
    ap.add_argument("--data", default="data/ranked/gsm8k-smollm2-joint.jsonl")
    ap.add_argument("--chains", type=int, default=10, help="test-split chains timed")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    recs = read_ranked(args.data, objective="joint")
    test = set(split_ids([r["id"] for r in recs])["test"])
    chains = [record_chain(r) for r in recs if r["id"] in test][: args.chains]
    lm = load_lm()
    names = [p.strip() for p in args.predictors.split(",") if p.strip()]
    rps = [RankPredictor.load(p, lm=lm) for p in names]
    for rp in rps:
        rp.predict_ranks(chains[0])  # warm-up
    per = {p: [] for p in names}
    for c in chains:
        times = {p: [] for p in names}
        for _ in range(args.repeats):
            for p, rp in zip(names, rps):
                t = time.perf_counter()
                rp.predict_ranks(c)
                times[p].append(time.perf_counter() - t)
        for p in names:
            per[p].append(statistics.median(times[p]))
    base = statistics.mean(per[names[0]])
    print(f"{len(chains)} test chains, median of {args.repeats} per chain, {args.threads} thread(s)\n")
    print("| predictor | s per chain (mean of medians) | ratio to the first |\n|---|---|---|")
    for p in names:
        m = statistics.mean(per[p])
        print(f"| {p} | {m:.3f} | {m / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
