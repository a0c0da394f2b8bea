"""Compare the greedy orders of two ranked files on the chains they share (same id and objective).

    python data/compare_ranked.py data/ranked/gsm8k-smollm2-joint.jsonl \
        data/ranked/variant-eos-im_start/gsm8k-smollm2-joint.jsonl

Prints, over the shared chains: how many orders are identical, the step where differing orders first
part (step / n), and the per-chain Spearman correlation of the two rank vectors (mean, median, min).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy.stats import spearmanr  # noqa: E402

from predictor.ranked import read_ranked  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="ranked JSONL")
    p.add_argument("b", help="ranked JSONL")
    args = p.parse_args()
    a = {(r["id"], r["objective"]): r for r in read_ranked(args.a)}
    b = {(r["id"], r["objective"]): r for r in read_ranked(args.b)}
    shared = [k for k in a if k in b]
    if not shared:
        sys.exit(f"{args.a} and {args.b} share no (id, objective)")
    same, parts, rhos = 0, [], []
    for k in shared:
        x, y = a[k], b[k]
        if x["reasoning_ids"] != y["reasoning_ids"]:
            sys.exit(f"{k[0]}: the two files tokenized the reasoning differently")
        rhos.append(float(spearmanr(x["ranks"], y["ranks"])[0]))
        if x["order"] == y["order"]:
            same += 1
        else:
            step = next(i for i, (s, t) in enumerate(zip(x["order"], y["order"])) if s != t) + 1
            parts.append(f"{step}/{len(x['order'])}")
    answers = {(a[k]["answer_ids"][-1], b[k]["answer_ids"][-1]) for k in shared}
    print(f"{len(shared)} shared chains; last answer token (a, b): {sorted(answers)}")
    print(f"identical orders: {same}/{len(shared)}; differing orders part at step (step/n): {', '.join(parts) or '-'}")
    print(f"Spearman of ranks per chain: mean {statistics.mean(rhos):.3f}, median {statistics.median(rhos):.3f}, "
          f"min {min(rhos):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
