"""LM tokens per second of one plain forward (oneDNN linears, LM head on every position) by input length.

The bound's waves (`predictor/greedy/suffix_reuse.py`) are often short forwards; this shows how the
per-token rate falls with the length: a forward costs a fixed part (streaming every weight once, the
Python around 30 layers) plus a part per token.

    python benchmarks/forward_size.py --threads 1,2 [--lengths 16,32,64,128,256,512]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1", help="comma-separated torch thread counts")
    ap.add_argument("--lengths", default="16,32,64,128,256,512", help="comma-separated input lengths")
    ap.add_argument("--repeats", type=int, default=5, help="timed forwards per length (median)")
    args = ap.parse_args()

    from predictor.cpu_matmul import onednn_applicable, use_onednn_linears
    from predictor.lm import base_and_head, load_lm

    lm = load_lm()
    if onednn_applicable(lm.model):
        use_onednn_linears(lm.model)
    base, head, _ = base_and_head(lm.model)
    print(f"LM {lm.name}; medians of {args.repeats} forwards")
    print("| threads | input tokens | LM tok/s |\n|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for n in (int(x) for x in args.lengths.split(",")):
            x = torch.randint(0, 1000, (1, n))
            walls = []
            with torch.no_grad():
                for rep in range(args.repeats + 2):  # two untimed warm-up forwards
                    t = time.perf_counter()
                    head(base(input_ids=x, use_cache=False).last_hidden_state)
                    if rep >= 2:
                        walls.append(time.perf_counter() - t)
            print(f"| {threads} | {n} | {n / statistics.median(walls):.0f} |", flush=True)


if __name__ == "__main__":
    main()
