"""Validate ranked JSONL files: schema, ranks a permutation of 1..n consistent with order, unique
ids per objective, trajectory length = n; optionally that every record used one LM fingerprint.

Prints counts per objective, and how many records hold approximate labels and by which setting
(`ranked.approximate_label`: label --stride / --budget / --shortlist; valid, but no exact greedy order),
and exits non-zero on the first bad record (named by file:line:field).
"""
from __future__ import annotations

import argparse
from collections import Counter

HELP = "validate ranked JSONL files (schema, permutations, unique ids)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help="ranked JSONL files")
    p.add_argument("--lm", default=None, help="require this LM fingerprint in every record")


def run(args: argparse.Namespace) -> int:
    from ..ranked import approximate_label, read_ranked

    for path in args.files:
        recs = read_ranked(path)
        if args.lm:
            bad = [r["id"] for r in recs if r["lm"] != args.lm]
            if bad:
                raise ValueError(f"{path}: {len(bad)} records have an LM other than {args.lm} (first: {bad[0]})")
        by_obj = Counter(r["objective"] for r in recs)
        tokens = sum(len(r["order"]) for r in recs)
        secs = sum(r["seconds"] for r in recs)
        approx = Counter(a for a in map(approximate_label, recs) if a)
        kinds = ", ".join(f"{how}: {k}" for how, k in approx.most_common())
        print(f"{path}: OK, {len(recs)} records ({dict(by_obj)}), {tokens} reasoning tokens, "
              f"{secs / 3600:.2f} h of labeling"
              + (f"; {sum(approx.values())} approximate labels ({kinds}), not the exact greedy order" if approx
                 else ""))
    return 0
