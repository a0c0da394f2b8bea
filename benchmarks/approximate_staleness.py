"""How far one greedy deletion moves the other candidates' stale "rests" (issue 28).

The approximate search (`predictor.greedy.approximate`) ranks candidates by local gain now + the rest
of their suffix's change as last re-scored. This measures, along the exact greedy trajectory of one
ranked chain, how much one deletion changes every other candidate's rest (whole suffixes, exact),
by signed distance d = (candidate's position - deleted position) in the state before the deletion:
before/after steps k (--steps). Prints mean / median / p90 of |change| per distance band and writes
the per-candidate rows to --out (JSON).

    python benchmarks/approximate_staleness.py --ranked data/ranked/long/gsm8k-smollm2-joint.jsonl \\
        --id gsm8k-train-1503 --steps 0,5,20,50 --out reports/frontier/tuning/staleness-gsm8k-train-1503.json
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

BANDS = [(-100000, -17), (-16, -9), (-8, -3), (-2, -1), (1, 2), (3, 8), (9, 16), (17, 100000)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranked", required=True, help="ranked JSONL file with exact greedy labels")
    p.add_argument("--id", required=True, help="chain id")
    p.add_argument("--steps", default="0,5,20,50", help="greedy steps k at which to measure deletion k+1")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON rows (step, d, change of rest, change of gain)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    from predictor import load_lm
    from predictor.greedy import make_scorer
    from predictor.greedy.approximate import _Sequence, _WindowScorer
    from predictor.layout import Layout

    r = next(x for x in map(json.loads, open(args.ranked)) if x["id"] == args.id)
    lm = load_lm()
    lay = Layout(r["prompt_ids"], r["reasoning_ids"], r["answer_ids"])
    joint = r["objective"] == "joint"
    cur = _Sequence(make_scorer(lm, lay, r["objective"], reuse=False, bound=False))
    whole = _WindowScorer(cur, joint, None)

    def delete(k: int) -> int:
        b = cur.kept.index(r["order"][k])
        cur.recompute(cur.kept[:b] + cur.kept[b + 1:], b)
        return b

    def rests():
        g = whole.gains(list(range(cur.m)))
        return g, g - cur.local_gains(joint)

    rows, k = [], 0
    for s in sorted(int(x) for x in args.steps.split(",")):
        while k < s:
            delete(k)
            k += 1
        g0, r0, kept0 = *rests(), list(cur.kept)
        b = delete(k)
        k += 1
        g1, r1 = rests()
        for j, t in enumerate(cur.kept):
            i0 = kept0.index(t)
            rows.append({"step": s, "d": i0 - b, "drest": float(r1[j] - r0[i0]), "dgain": float(g1[j] - g0[i0])})
    d = np.array([x["d"] for x in rows])
    ch = np.abs([x["drest"] for x in rows])
    print(f"{args.id}, n={lay.n}, deletions after steps {args.steps}: |change of a candidate's rest| by distance")
    print("| distance | candidates | mean | median | p90 |\n|---|---|---|---|---|")
    for lo, hi in BANDS:
        sel = (d >= lo) & (d <= hi)
        if sel.any():
            print(f"| {lo}..{hi} | {sel.sum()} | {ch[sel].mean():.3f} | {np.median(ch[sel]):.3f} | "
                  f"{np.percentile(ch[sel], 90):.3f} |")
    if args.out:
        json.dump(rows, open(args.out, "w"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
