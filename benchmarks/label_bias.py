r"""Whom does a predictor agree with: exact greedy, or the approximate search it was trained on? (issue 28)

Training on approximate labels can teach a predictor the approximate search's mistakes. For the chains
that have both an exact record (--ranked) and an approximate search's ranks (a method's per-chain ranks
in `benchmarks/approximate_frontier.py`'s frontier.json files), this prints each predictor's mean
per-chain Spearman with either (95% bootstrap CI over chains) and the paired differences of the second
predictor minus the first.

    python benchmarks/label_bias.py --ranked data/ranked/long/gsm8k-smollm2-joint.jsonl \
        --frontier reports/frontier/long-test/frontier.json reports/frontier/long-test-prio/c/frontier.json \
        --method lazy-0.1 --predictors predictor/pretrained/smollm2-joint runs/long3/train/predictor --threads 1
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranked", required=True, help="exact ranked JSONL of the chains")
    p.add_argument("--frontier", nargs="+", required=True, help="approximate_frontier.py frontier.json files")
    p.add_argument("--method", required=True, help="the approximate method's name in those files (e.g. lazy-0.1)")
    p.add_argument("--predictors", nargs=2, required=True, metavar=("FIRST", "SECOND"),
                   help="two predictors (directories or shipped names); paired = SECOND minus FIRST")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch
    from scipy.stats import spearmanr

    from predictor import RankPredictor
    from predictor.metrics import bootstrap_ci
    from predictor.ranked import approximate_label, read_ranked, record_chain

    torch.set_num_threads(args.threads)
    if not Path(args.ranked).is_file():
        p.error(f"--ranked {args.ranked}: no such file")
    approx: dict[str, np.ndarray] = {}
    for f in args.frontier:
        try:
            chains = json.loads(Path(f).read_text())["chains"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            p.error(f"--frontier {f}: not an approximate_frontier.py frontier.json ({type(e).__name__}: {e})")
        if args.method not in chains:
            p.error(f"{f}: no method {args.method!r} (has: {', '.join(chains)})")
        for c in chains[args.method]:
            if c["id"] in approx:
                p.error(f"{f}: chain {c['id']} is also in an earlier --frontier file")
            approx[c["id"]] = np.asarray(c["ranks"], dtype=float)
    exact = {r["id"]: r for r in read_ranked(args.ranked) if approximate_label(r) is None}
    ids = sorted(set(approx) & set(exact))
    if len(ids) < 2:
        p.error(f"only {len(ids)} chain(s) have both an exact record in --ranked and {args.method} ranks")
    for c in ids:
        if len(approx[c]) != len(exact[c]["ranks"]):
            p.error(f"chain {c}: {len(approx[c])} {args.method} ranks but {len(exact[c]['ranks'])} reasoning "
                    f"tokens in --ranked (not the same chain)")
    try:
        predictors = [RankPredictor.load(path) for path in args.predictors]
    except (ValueError, FileNotFoundError) as e:
        p.error(f"--predictors: {e}")
    fmt = lambda t: f"{t[0]:+.3f} [{t[1]:+.3f}, {t[2]:+.3f}]"  # noqa: E731
    print(f"{len(ids)} chains; {args.method} vs exact greedy: "
          f"{fmt(bootstrap_ci([spearmanr(approx[c], exact[c]['ranks']).correlation for c in ids]))}")
    got = []
    for path, pred in zip(args.predictors, predictors):
        with_exact, with_approx = [], []
        for c in ids:
            ranks = np.asarray(pred.predict_ranks(record_chain(exact[c])))
            with_exact.append(spearmanr(ranks, exact[c]["ranks"]).correlation)
            with_approx.append(spearmanr(ranks, approx[c]).correlation)
        got.append((np.array(with_exact), np.array(with_approx)))
        print(f"{path}: with exact {fmt(bootstrap_ci(with_exact))}, with {args.method} {fmt(bootstrap_ci(with_approx))}")
    print(f"paired, second minus first: with exact {fmt(bootstrap_ci(got[1][0] - got[0][0]))}, "
          f"with {args.method} {fmt(bootstrap_ci(got[1][1] - got[0][1]))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
