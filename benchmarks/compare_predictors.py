"""Two or more predictors on the same chains that none of them saw: mean per-chain Spearman with greedy
[95% bootstrap CI] for each, and the paired difference of each to the first.

Which chains: the records of --data whose id is in the chosen split of the *first* predictor
(--split test|val, the split ids its predictor.json stores; --split unseen: every record), minus every
record that any of the predictors trained on (its stored train ids and extra training chains) or, for
test and unseen, was selected on (its validation ids). So a retrained predictor can be compared with the one it replaces on
chains neither has seen, even when their splits or extra training files differ.

    python benchmarks/compare_predictors.py --data data/ranked/gsm8k-smollm2-joint.jsonl \\
        --predictors runs/train/predictor predictor/pretrained/smollm2-joint --split val

Each predictor ranks each chain with one forward pass (`RankPredictor.predict_ranks`), the path a
user's call takes. Writes OUT.json (per-chain values) and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pick_chains(records: list[dict], metas: list[dict], split: str) -> list[dict]:
    """The records in the first predictor's `split` ('test', 'val', or 'unseen' = every record) that no
    predictor trained on; for 'test' and 'unseen', also none was selected on. For 'val' every
    predictor may have selected on them: validation is where a shipping choice is made."""
    from predictor.evaluation import seen_ids, stored_split_ids

    if split == "unseen":
        pool = {str(r["id"]) for r in records}
    else:
        ids = stored_split_ids(metas[0], split)
        if ids is None:
            raise ValueError(f"the first predictor stores no {split} split")
        pool = set(ids)
    banned = set().union(*(seen_ids(m, with_val=split != "val") for m in metas))
    return [r for r in records if str(r["id"]) in pool and str(r["id"]) not in banned]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="ranked JSONL (greedy labels)")
    ap.add_argument("--predictors", nargs="+", required=True, help="predictor directories; the first is the reference")
    ap.add_argument("--names", default=None, help="comma-separated display names (default: directory paths)")
    ap.add_argument("--split", choices=("test", "val", "unseen"), default="test",
                    help="chains: the first predictor's test or val split, or every record (default: test)")
    ap.add_argument("--model", default=None, help="LM (default: the first predictor's own)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--out", default=None, help="JSON with per-chain values (default: print only)")
    args = ap.parse_args(argv)

    import torch

    from predictor.evaluation.ablation import paired_difference
    from predictor.metrics import bootstrap_ci, per_chain_spearman
    from predictor.lm import load_lm
    from predictor.predictor_dir import read_metadata
    from predictor.rank_predictor import RankPredictor
    from predictor.ranked import read_ranked, record_chain

    torch.set_num_threads(args.threads)
    metas = [read_metadata(p) for p in args.predictors]
    names = args.names.split(",") if args.names else list(args.predictors)
    if len(names) != len(args.predictors):
        ap.error("--names needs one name per predictor")
    records = read_ranked(args.data, objective="joint")
    chosen = pick_chains(records, metas, args.split)
    if not chosen:
        print("no chain is unseen by every predictor", file=sys.stderr)
        return 1
    print(f"{len(chosen)} chains of {args.data} ({args.split} split of {names[0]}, unseen by all)", file=sys.stderr)
    lm = load_lm(args.model or metas[0].get("lm_name"))
    chains = [record_chain(r) for r in chosen]
    true = [np.asarray(r["ranks"]) for r in chosen]
    per_chain = {}
    for name, path in zip(names, args.predictors):
        rp = RankPredictor.load(path, lm=lm)
        per_chain[name] = per_chain_spearman(rp.predict_ranks(chains), true)
    ref = names[0]
    lines = [f"| predictor | Spearman [95% CI], {len(chosen)} chains | minus {ref} (paired) |", "|---|---|---|"]
    result = {"data": args.data, "split": args.split, "ids": [str(r["id"]) for r in chosen], "rows": {}}
    for name in names:
        m, lo, hi = bootstrap_ci(per_chain[name], n_boot=args.n_boot)
        row = {"mean": m, "lo": lo, "hi": hi, "per_chain": per_chain[name].tolist()}
        diff = ""
        if name != ref:
            d = paired_difference(per_chain[name], per_chain[ref], n_boot=args.n_boot)
            row["minus_ref"] = list(d)
            diff = f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"
        result["rows"][name] = row
        lines.append(f"| {name} | {m:.3f} [{lo:.3f}, {hi:.3f}] | {diff} |")
    print("\n".join(lines))
    if args.out:
        from predictor.jsonl_io import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
