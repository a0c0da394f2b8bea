"""Time and peak memory of contiguity-aware selection (`select_kept_contiguous`) on long chains.

    python benchmarks/selection_cost.py [--lengths 2000,8000,20000] [--ratios 0.1,0.5,0.9]

Random ranks, one unit per token, gap_cost 2, position_weight 0.3; median wall time of 3 runs and
the peak of Python-tracked memory (tracemalloc) of one more, next to the size the full U x (n + 1)
boolean back-pointer table (two of them) would take. Prints a Markdown table on stdout.
"""
from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from predictor.contiguous_selection import rank_values, select_kept_contiguous


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="2000,8000,20000", help="chain lengths in tokens, comma-separated")
    ap.add_argument("--ratios", default="0.1,0.5,0.9", help="keep ratios, comma-separated")
    a = ap.parse_args()
    print("| tokens | keep | time (s, median of 3) | peak memory (MiB) | full table (MiB) |")
    print("|---|---|---|---|---|")
    for n in map(int, a.lengths.split(",")):
        v = rank_values(np.random.default_rng(0).permutation(n) + 1, 0.3)
        for ratio in map(float, a.ratios.split(",")):
            k = max(1, round(ratio * n))
            times = []
            for _ in range(3):
                t = time.perf_counter()
                select_kept_contiguous(v, k, 2.0)
                times.append(time.perf_counter() - t)
            tracemalloc.start()
            select_kept_contiguous(v, k, 2.0)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"| {n:,} | {ratio:g} | {statistics.median(times):.2f} | {peak / 2**20:.1f} | "
                  f"{2 * n * (n + 1) / 2**20:.0f} |", flush=True)


if __name__ == "__main__":
    main()
