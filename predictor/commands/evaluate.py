"""Evaluate scorers and a learned predictor against the greedy oracle -> report.md, report.json, plots.

Scores the predictor's held-out test chains (the split ids stored in its predictor.json; never
its training chains) of a ranked JSONL with every scorer, and writes into --out:
  report.md    rank agreement (Spearman + 95% bootstrap CI, pooled, Kendall, precision of the
               first-pruned 25%/50%, by chain length), feature-group ablation with findings,
               downstream fidelity at keep ratios 0.9/0.7/0.5/0.3, function analysis, cost and
               the cost-quality frontier, JOINT vs ANSWER
  report.json  every number in the report
  plots/*.png  the figures report.md embeds

Records with objective "answer" in the same file (or --answer-data) feed the JOINT-vs-ANSWER section.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from .common import add_lm_arguments, comma_list

HELP = "evaluate scorers vs the greedy oracle on held-out chains -> report.md/json + plots"


_csv = comma_list(str)
_ints = comma_list(int)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..evaluation import DEFAULT_SCORERS

    p.add_argument("--data", required=True, help="ranked JSONL (greedy labels; JOINT records are evaluated)")
    p.add_argument("--predictor", default=None,
                   help="trained predictor directory or shipped name (default: the shipped predictor trained for --model, e.g. predictor/pretrained/smollm2-joint)")
    p.add_argument("--scorers", type=_csv, default=list(DEFAULT_SCORERS),
                   help=f"comma-separated baselines to compare (default: {','.join(DEFAULT_SCORERS)})")
    p.add_argument("--out", required=True, help="report directory (report.md, report.json, plots/)")
    p.add_argument("--answer-data", default=None, help="ranked JSONL with ANSWER-objective labels (optional)")
    p.add_argument("--max-chains", type=int, default=None, help="evaluate at most this many test chains")
    p.add_argument("--unseen", action="store_true",
                   help="the data come from elsewhere (another style, your own labels): evaluate every record "
                        "whose id is not among the predictor's training or validation chains, instead of its "
                        "stored test split (no ablation)")
    p.add_argument("--max-train-chains", type=int, default=None, help="ablation: train on at most this many chains")
    p.add_argument("--frontier-chains", type=int, default=3,
                   help="chains for the cost-quality frontier (greedy strides are expensive; default 3)")
    p.add_argument("--refresh", type=_ints, default=[2, 5, 10],
                   help="refresh settings on the frontier (default 2,5,10)")
    p.add_argument("--strides", type=_ints, default=[2, 4, 8], help="greedy strides on the frontier (default 2,4,8)")
    p.add_argument("--no-ablation", action="store_true", help="skip the feature-group ablation")
    p.add_argument("--no-fidelity", action="store_true", help="skip downstream fidelity")
    p.add_argument("--no-frontier", action="store_true", help="skip the cost-quality frontier")
    p.add_argument("--no-plots", action="store_true", help="write report.md/json only")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap / random-baseline seed (default 0)")
    add_lm_arguments(p, matmul=False)


def run(args: argparse.Namespace) -> int:
    from .. import __version__ as version
    from ..evaluation import evaluate, write_report
    from ..feature_cache import FeatureCache
    from ..rank_predictor import RankPredictor
    from ..ranked import approximate_label, read_ranked
    from ..runtime import load_lm_on, set_threads
    from ..scorers import SCORERS

    bad = [s for s in args.scorers if s not in SCORERS]
    if bad:
        raise ValueError(f"unknown scorer(s) {', '.join(bad)}; registered: {', '.join(SCORERS)}")
    set_threads(args.threads)
    if not Path(args.data).exists():
        raise FileNotFoundError(f"ranked data {args.data} does not exist")
    t0 = time.perf_counter()
    records = read_ranked(args.data)
    joint = [r for r in records if r["objective"] == "joint"]
    answer = [r for r in records if r["objective"] == "answer"]
    if args.answer_data:
        answer += read_ranked(args.answer_data, objective="answer")
    if not joint:
        raise ValueError(f"{args.data} has no JOINT-objective records to evaluate")
    approx = [approximate_label(r) for r in joint + answer]
    if any(approx):
        kinds = sorted({a for a in approx if a})
        print(f"warning: {sum(map(bool, approx))} reference chains carry approximate labels ({', '.join(kinds)}): "
              "agreement is measured against them, not the exact greedy order", file=sys.stderr)
    lm = None
    if args.model is not None:
        lm = load_lm_on(args.model, args.device, args.threads)
    rp = RankPredictor.load(args.predictor, lm=lm, device=args.device)
    fps = {r["lm"] for r in joint}
    if rp.lm.fingerprint not in fps:
        print(f"warning: the data were labeled with LM {sorted(fps)}, scoring with {rp.lm.fingerprint}",
              file=sys.stderr)
    argv = " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv and "evaluate" in sys.argv else ""
    meta = {"data": args.data, "predictor": str(args.predictor or "predictor/pretrained/smollm2-joint"),
            "package_version": version, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": f"predictor {argv}".strip() if argv else None,
            "regenerate": "make report"}
    res = evaluate(rp.lm, joint, rp, args.scorers, answer_records=answer, max_chains=args.max_chains,
                   ablation=not args.no_ablation, fidelity=not args.no_fidelity, frontier=not args.no_frontier,
                   refreshes=args.refresh, strides=args.strides, frontier_chains=args.frontier_chains,
                   max_train_chains=args.max_train_chains, feature_cache=FeatureCache(),
                   n_boot=args.bootstrap, seed=args.seed, progress=True, meta=meta, unseen=args.unseen)
    res["meta"]["seconds"] = round(time.perf_counter() - t0, 1)
    paths = write_report(args.out, res, plots=not args.no_plots)
    agr = res["agreement"]
    for name in sorted(agr, key=lambda k: -agr[k]["spearman_mean"]):
        a = agr[name]
        print(f"{name:>15}  Spearman {a['spearman_mean']:+.3f} [{a['spearman_lo']:+.3f}, {a['spearman_hi']:+.3f}]",
              file=sys.stderr)
    print(f"wrote {paths['md']} and {paths['json']} ({len(paths) - 2} plots) in {res['meta']['seconds']} s",
          file=sys.stderr)
    return 0
