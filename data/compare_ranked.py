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

from predictor.ranked import order_agreement, read_ranked  # noqa: E402


def compare(a: list[dict], b: list[dict]) -> dict:
    """Agreement of two record lists on their shared (id, objective): shared count, identical orders,
    where differing orders part ("step/n"), per-chain Spearman, and the (a, b) last answer tokens."""
    by_key = {(r["id"], r["objective"]): r for r in b}
    pairs = [(x, by_key[(x["id"], x["objective"])]) for x in a if (x["id"], x["objective"]) in by_key]
    parts, rhos = [], []
    for x, y in pairs:
        if x["reasoning_ids"] != y["reasoning_ids"]:
            raise ValueError(f"{x['id']}: the two files tokenized the reasoning differently")
        part, rho = order_agreement(x["order"], y["order"])
        rhos.append(rho)
        if part is not None:
            parts.append(f"{part}/{len(x['order'])}")
    return {"shared": len(pairs), "same": len(pairs) - len(parts), "parts": parts, "rhos": rhos,
            "answer_ends": sorted({(x["answer_ids"][-1], y["answer_ids"][-1]) for x, y in pairs})}


def summary(c: dict) -> str:
    """One line: identical orders and the Spearman mean / median / min."""
    rhos = c["rhos"]
    return (f"{c['same']}/{c['shared']} identical orders, per-chain Spearman of the ranks mean "
            f"{statistics.mean(rhos):.3f}, median {statistics.median(rhos):.3f}, min {min(rhos):.3f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="ranked JSONL")
    p.add_argument("b", help="ranked JSONL")
    args = p.parse_args()
    try:
        c = compare(read_ranked(args.a), read_ranked(args.b))
    except ValueError as e:
        sys.exit(str(e))
    if not c["shared"]:
        sys.exit(f"{args.a} and {args.b} share no (id, objective)")
    print(f"{c['shared']} shared chains; last answer token (a, b): {c['answer_ends']}")
    print(f"differing orders part at step (step/n): {', '.join(c['parts']) or '-'}")
    print(summary(c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
