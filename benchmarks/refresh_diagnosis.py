"""Why does `refresh` (re-scoring the survivors as tokens go) lower agreement with greedy?

On chains whose predictor-pruned states were labeled exactly (`predictor label-states`), compare:
  A  the predictor on the survivors of *greedy's* own first deletions (the states it trained on),
     against greedy's order of those survivors;
  B  the predictor on the survivors of *its own* first deletions, against the exact greedy search
     run from that state;
  C  greedy's original order restricted to the predictor's survivors, against the greedy search run
     from that state (how path-dependent greedy is: a perfect state scorer could not beat this);
  D  two passes with a perfect second pass: the predictor's deletions first, then the exact greedy
     order of the survivors, against greedy's ranks of the full chain;
  E  `predict_ranks(refresh=2)` and F `predict_ranks(refresh=1)`, against the same ranks.
Mean per-chain Spearman [95% bootstrap CI]; A - B paired.

    python benchmarks/refresh_diagnosis.py --states data/ranked/policy-states/gsm8k-smollm2-joint-val.jsonl
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    import torch

    from predictor.evaluation.ablation import paired_difference
    from predictor.metrics import bootstrap_ci, per_chain_spearman
    from predictor.rank_predictor import RankPredictor
    from predictor.ranked import read_ranked, record_chain
    from predictor.training_data import state_targets

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/ranked/gsm8k-smollm2-joint.jsonl")
    ap.add_argument("--states", required=True, help="state records from `predictor label-states`")
    ap.add_argument("--predictor", default=None, help="predictor directory (default: shipped); should be the "
                                                      "one that pruned the states")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    parents = {str(r["id"]): r for r in read_ranked(args.data, objective="joint")}
    states = [s for s in read_ranked(args.states, objective="joint") if str(s["parent_id"]) in parents]
    rp = RankPredictor.load(args.predictor)
    rows = {k: [] for k in "ABCDEF"}
    for st in states:
        par = parents[str(st["parent_id"])]
        chain, order, full = record_chain(par), list(par["order"]), np.asarray(par["ranks"])
        f = float(st["fraction"])
        kept_g, y_g = state_targets(order, f)
        rows["A"].append((rp.scorer.score(rp.observe(chain, kept_g)), y_g))
        kept_p, y_p = list(st["kept"]), np.asarray(st["ranks"])
        rows["B"].append((rp.scorer.score(rp.observe(chain, kept_p)), y_p))
        rows["C"].append((full[kept_p], y_p))
        first = rp.predict_ranks(chain)
        two = np.zeros(len(full), dtype=np.int64)
        gone = np.setdiff1d(np.arange(len(full)), kept_p)
        two[gone] = first[gone].argsort().argsort() + 1
        two[kept_p] = len(gone) + y_p
        rows["D"].append((two, full))
        rows["E"].append((rp.predict_ranks(chain, refresh=2), full))
        rows["F"].append((first, full))
    rho = {k: per_chain_spearman([p for p, _ in v], [t for _, t in v]) for k, v in rows.items()}
    labels = {"A": "predictor on greedy's states", "B": "predictor on its own states",
              "C": "greedy's original order on the predictor's states", "D": "predictor, then exact greedy (2 passes)",
              "E": "predict_ranks(refresh=2)", "F": "predict_ranks (1 pass)"}
    print(f"{len(states)} states (fraction {sorted({float(s['fraction']) for s in states})}) of {args.states}\n")
    print("| | measurement | mean per-chain Spearman [95% CI] |\n|---|---|---|")
    for k, v in rho.items():
        m, lo, hi = bootstrap_ci(v)
        print(f"| {k} | {labels[k]} | {m:.3f} [{lo:.3f}, {hi:.3f}] |")
    m, lo, hi = paired_difference(rho["A"], rho["B"])
    print(f"\nA - B (paired): {m:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
