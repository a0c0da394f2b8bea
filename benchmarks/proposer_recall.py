"""How often a cheap proposer's shortlist holds exact greedy's next deletion (issue 28).

A shortlist search (`predictor.greedy.approximate`, shortlist mode) re-scores exactly only the
candidates its proposers name, so its agreement with greedy is bounded by how often greedy's choice is
among them. Along exact greedy's own trajectory of each ranked chain (the states after 0, 10%, ...,
90% of the deletions, `--states`), this scores every candidate exactly (whole suffixes) and asks where
each proposer ranks greedy's actual choice:

- `local`: the free local part of each gain (own log-prob term + the next token's change);
- `atp`: local + attribution patching's first-order rest, the layers' attention changes linearized
  (`greedy.attribution_patching`, qk_fix off: the gradient of a gate on each key);
- `atp*`: the same with each layer's attention change exact (AtP*'s fix for saturated attention);
- `predictor`: the one-pass predictor re-run on the current kept sequence (`--predictor`).

Prints and writes (`--out`, JSON) per proposer: recall@K (greedy's choice among the K first) for K =
1, 2, 4, 8 and the mean per-state Spearman with the exact gains, each a mean over chains [95% CI]
(per chain: the mean over its states), and the LM token equivalents one call costs.

    python benchmarks/proposer_recall.py --ranked data/ranked/gsm8k-smollm2-joint.jsonl --split val \\
        --min-n 40 --max-n 64 --limit 12 --threads 1 --out reports/frontier/proposer-recall/val.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KS = (1, 2, 4, 8)


def choice_rank(scores: np.ndarray, b: int) -> int:
    """0-based rank of candidate b when candidates are taken highest score first (ties: lower index first)."""
    return int(np.sum(scores > scores[b]) + np.sum(scores[:b] == scores[b]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranked", required=True, help="ranked JSONL file with exact greedy labels")
    p.add_argument("--split", default="all", choices=["all", "train", "val", "test"],
                   help="split of the chains (predictor.splits), or all (default)")
    p.add_argument("--ids", default="", help="comma-separated chain ids (default: any)")
    p.add_argument("--min-n", type=int, default=0)
    p.add_argument("--max-n", type=int, default=10 ** 9)
    p.add_argument("--limit", type=int, default=10 ** 9, help="at most this many chains (file order)")
    p.add_argument("--states", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
                   help="states: shares of the deletions done along greedy's trajectory")
    p.add_argument("--predictor", default="smollm2-joint", help="one-pass predictor (name or folder); '' for none")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="JSON report (rewritten after every chain); files labeled "
                   "with the embedded SmolLM2 only")
    args = p.parse_args(argv)
    try:
        shares = [float(x) for x in args.states.split(",")]
    except ValueError:
        p.error(f"--states: comma list of numbers, got {args.states!r}")
    if not all(0 <= x < 1 for x in shares):
        p.error(f"--states: shares in [0, 1), got {args.states!r}")
    if args.limit < 1 or args.threads < 1:
        p.error("--limit and --threads must be >= 1")
    if not Path(args.ranked).is_file():
        p.error(f"--ranked {args.ranked}: no such file")
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    from approximate_frontier import select_records
    from scipy.stats import spearmanr

    from predictor import RankPredictor, load_lm
    from predictor.greedy import make_scorer
    from predictor.greedy.approximate import _Sequence, _WindowScorer, predictor_proposer
    from predictor.greedy.attribution_patching import DeletionGainEstimator
    from predictor.jsonl_io import atomic_write_text
    from predictor.layout import Layout
    from predictor.metrics import bootstrap_ci

    recs = select_records([json.loads(x) for x in open(args.ranked) if x.strip()], args.split, args.ids)
    recs = [r for r in recs if args.min_n <= len(r["reasoning_ids"]) <= args.max_n][: args.limit]
    if not recs:
        raise SystemExit("no chains match")
    lm = load_lm()
    other = sorted({r.get("lm") for r in recs} - {lm.fingerprint})
    if other:  # the records' token ids belong to another LM's vocabulary
        raise SystemExit(f"{args.ranked}: labeled with LM {', '.join(map(str, other))}, not the embedded SmolLM2 "
                         f"({lm.fingerprint}) this script runs")
    rp = RankPredictor.load(args.predictor, lm=lm) if args.predictor else None
    chains: list[dict] = []
    for r in recs:
        t0 = time.perf_counter()
        lay = Layout(r["prompt_ids"], r["reasoning_ids"], r["answer_ids"])
        joint = r["objective"] == "joint"
        chain = {"id": r["id"], "question": r["question"], "reasoning": r["reasoning"], "answer": r["answer"]}
        cur = _Sequence(make_scorer(lm, lay, r["objective"], reuse=False, bound=False))
        whole = _WindowScorer(cur, joint, None)
        ests = {"atp": DeletionGainEstimator(lm, lay, r["objective"], qk_fix=False),
                "atp*": DeletionGainEstimator(lm, lay, r["objective"], qk_fix=True)}
        propose = predictor_proposer(rp, chain) if rp is not None else None
        per: dict[str, dict[str, list[float]]] = {}
        cost: dict[str, list[float]] = {}
        for s in sorted({min(lay.n - 1, int(round(x * lay.n))) for x in shares}):
            deleted = set(r["order"][:s])
            kept = [i for i in range(lay.n) if i not in deleted]
            cur.recompute(kept, 0)
            exact = whole.gains(list(range(len(kept))))
            b = kept.index(r["order"][s])
            scores = {"local": cur.local_gains(joint)}
            for name, est in ests.items():
                before = est.tokens
                scores[name] = est.estimate(kept)
                cost.setdefault(name, []).append(est.tokens - before)
            if propose is not None:
                sc, ran = propose(kept)
                scores["predictor"] = -np.asarray(sc)
                cost.setdefault("predictor", []).append(ran)
            for name, v in scores.items():
                d = per.setdefault(name, {})
                rank = choice_rank(v, b)
                for k in KS:
                    d.setdefault(f"recall@{k}", []).append(float(rank < k))
                d.setdefault("spearman", []).append(float(spearmanr(v, exact)[0]) if len(kept) > 2 else float("nan"))
        chains.append({"id": r["id"], "n": lay.n,
                       "metrics": {name: {k: float(np.nanmean(v)) for k, v in d.items()} for name, d in per.items()},
                       "tokens_per_call": {k: float(np.mean(v)) for k, v in cost.items()},
                       "seconds": time.perf_counter() - t0})
        print(f"{r['id']} n={lay.n}: " + "; ".join(
            f"{name} r@1 {m['recall@1']:.2f} r@4 {m['recall@4']:.2f} rho {m['spearman']:.2f}"
            for name, m in chains[-1]["metrics"].items()), flush=True)
        summary = {}
        for name in chains[0]["metrics"]:
            summary[name] = {k: list(bootstrap_ci([c["metrics"][name][k] for c in chains]))
                             for k in chains[0]["metrics"][name]}
        report = {"command": " ".join(sys.argv), "ranked": args.ranked, "split": args.split, "states": shares,
                  "chains": chains, "summary": summary}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(report, indent=1))
    for name, s in summary.items():
        print(f"{name:10s} " + "  ".join(f"{k} {v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]" for k, v in s.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
