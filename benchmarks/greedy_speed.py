"""Fast greedy labeler vs the plain reference (a full forward pass per candidate), side by side.

For each selected GSM8K chain, runs both searches on the embedded LM (or --model), interleaved,
and prints seconds, reasoning tokens ranked per second, the speed-up and whether the deletion
orders and trajectories agree. `--max-steps S` times only the first S greedy steps (the most
expensive ones) for chains longer than --full-upto tokens, since the reference costs ~n^3.

    python benchmarks/greedy_speed.py --lengths 40,60,85 --threads 1
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chains", default="data/chains/gsm8k-train-20-64.jsonl", help="chains JSONL")
    ap.add_argument("--gsm8k", default="data/gsm8k/train.jsonl", help="GSM8K JSONL for lengths beyond --chains")
    ap.add_argument("--lengths", default="40,60,85", help="pick the first chain with each reasoning length")
    ap.add_argument("--full-upto", type=int, default=45, help="run the full search on chains up to this length")
    ap.add_argument("--max-steps", type=int, default=6, help="steps timed on longer chains")
    ap.add_argument("--repeats", type=int, default=1, help="runs per path; the median is reported")
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from predictor.chains import read_gsm8k
    from predictor.greedy import SearchOptions, greedy_prune
    from predictor.greedy.reference import greedy_prune_reference
    from predictor.layout import encode_chain
    from predictor.lm import load_lm

    lm = load_lm(args.model)
    pool = read_gsm8k(args.gsm8k)
    picked = []
    for want in (int(x) for x in args.lengths.split(",")):
        c = next(c for c in pool if encode_chain(lm.tokenizer, c).n == want)
        picked.append(c)
    print(f"LM {lm.name} ({lm.fingerprint}), {torch.get_num_threads()} thread(s), float32")
    print("| chain | n | steps timed | reference s | fast s | speed-up | ref tok/s | fast tok/s | orders agree | max traj diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in picked:
        n = encode_chain(lm.tokenizer, c).n
        steps = None if n <= args.full_upto else args.max_steps
        ref_t, fast_t = [], []
        for _ in range(args.repeats):
            t = time.perf_counter(); ref = greedy_prune_reference(lm, c, max_steps=steps); ref_t.append(time.perf_counter() - t)
            t = time.perf_counter(); fast = greedy_prune(lm, c, SearchOptions(max_steps=steps)); fast_t.append(time.perf_counter() - t)
        r, f = statistics.median(ref_t), statistics.median(fast_t)
        k = len(fast.order)
        diff = float(np.max(np.abs(np.array(fast.trajectory) - np.array(ref.trajectory))))
        print(f"| {c.id} | {n} | {k if steps else 'all'} | {r:.1f} | {f:.1f} | {r / f:.1f}x | "
              f"{k / r:.2f} | {k / f:.2f} | {fast.order == ref.order} | {diff:.1e} |", flush=True)
    print("tok/s = reasoning tokens ranked (deleted) per second; 'steps timed' < n means only the first steps ran.")


if __name__ == "__main__":
    main()
