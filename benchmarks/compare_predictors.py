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


def predictor_metadata(path: str) -> dict:
    """predictor.json of what `RankPredictor.load(path)` loads: {} (trained and selected on nothing) for a
    registered scorer that needs no directory (`predictor.scorers.SCORERS`, e.g. "local-gain"; a name
    wins over a folder of that name, as there), else the directory's (a shipped predictor's name such as
    "learned" or "universal", or a path). PredictorLoadError naming what is accepted otherwise."""
    from predictor.predictor_dir import PredictorLoadError, pretrained_dir, read_metadata, shipped_predictors
    from predictor.scorers import DIRECTORY_SCORERS, SCORERS

    if path in SCORERS and path not in DIRECTORY_SCORERS:
        return {}
    shipped = {"learned": pretrained_dir(), **shipped_predictors()}
    where = shipped.get(path, Path(path))
    if not Path(where).exists():
        names = [k for k in SCORERS if k not in DIRECTORY_SCORERS] + list(shipped)
        raise PredictorLoadError(f"{path}: neither a predictor directory nor a registered scorer or shipped "
                                 f"predictor name ({', '.join(names)})")
    return read_metadata(where)


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
            raise ValueError(f"the first predictor stores no {split} split (a registered scorer such as local-gain "
                             "has none): put a trained predictor first, or use --split unseen")
        pool = set(ids)
    banned = set().union(*(seen_ids(m, with_val=split != "val") for m in metas))
    return [r for r in records if str(r["id"]) in pool and str(r["id"]) not in banned]


def length_buckets(n_tokens: np.ndarray, edges: list[int]) -> list[tuple[str, np.ndarray]]:
    """(label, boolean mask over chains) per bucket of reasoning lengths: <= e1, e1+1..e2, ..., > e_last.
    Every chain falls in exactly one bucket."""
    n_tokens = np.asarray(n_tokens)
    bounds = [0, *sorted(edges), None]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        pick = (n_tokens > lo) & (n_tokens <= hi) if hi is not None else n_tokens > lo
        out.append((f"{lo + 1}-{hi}" if hi is not None else f">{lo}", pick))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="ranked JSONL (greedy labels)")
    ap.add_argument("--predictors", nargs="+", required=True,
                    help="predictor directories, or names of registered one-pass scorers (e.g. local-gain, surprisal: "
                         "trained on nothing); the first is the reference")
    ap.add_argument("--names", default=None, help="comma-separated display names (default: directory paths)")
    ap.add_argument("--split", choices=("test", "val", "unseen"), default="test",
                    help="chains: the first predictor's test or val split, or every record (default: test)")
    ap.add_argument("--model", default=None, help="LM (default: the first predictor's own)")
    from predictor.commands.common import add_threads_argument

    add_threads_argument(ap, default=1)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--by-length", default=None, metavar="EDGES",
                    help="also a table per reasoning-length bucket, e.g. 32,48,64: buckets 1-32, 33-48, 49-64, >64 "
                         "reasoning tokens (each bucket's chains, same predictors; a bucket of fewer than 2 chains "
                         "is named, with no interval)")
    ap.add_argument("--out", default=None, help="JSON with per-chain values (default: print only)")
    args = ap.parse_args(argv)
    edges = []
    if args.by_length is not None:
        try:
            edges = sorted({int(e) for e in args.by_length.split(",")})
        except ValueError:
            ap.error(f"--by-length: comma-separated integers, got {args.by_length!r}")
        if not edges or edges[0] < 1:
            ap.error(f"--by-length: bucket edges are reasoning-token counts >= 1, got {args.by_length!r}")
    names = args.names.split(",") if args.names else list(args.predictors)
    if len(names) != len(args.predictors):
        ap.error("--names needs one name per predictor")
    if len(set(names)) != len(names):
        ap.error(f"every predictor needs its own name, got {','.join(names)!r}: pass each predictor once, or "
                 "distinct --names")
    if args.out and Path(args.out).is_dir():
        ap.error(f"--out {args.out}: is a directory; give a JSON file path")

    import torch

    from predictor.evaluation.ablation import paired_difference
    from predictor.metrics import bootstrap_ci, per_chain_spearman
    from predictor.lm import load_lm
    from predictor.rank_predictor import RankPredictor
    from predictor.ranked import approximate_label, read_ranked, record_chain

    torch.set_num_threads(args.threads)
    try:
        metas = [predictor_metadata(p) for p in args.predictors]
        records = read_ranked(args.data, objective="joint")
        if not records:
            raise ValueError(f"{args.data}: no JOINT-objective records (this comparison scores JOINT labels)")
        approx = next((r for r in records if approximate_label(r)), None)
        if approx is not None:
            raise ValueError(f"{args.data}: chain {approx['id']!r} carries approximate labels "
                             f"({approximate_label(approx)}); predictors are compared against the exact order")
        chosen = pick_chains(records, metas, args.split)
    except (ValueError, FileNotFoundError) as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2
    if not chosen:
        print(f"{ap.prog}: error: none of the {len(records)} records of {args.data} is in the {args.split} split of "
              f"{names[0]} and unseen by every predictor (--split unseen: every record no predictor trained or "
              "selected on)", file=sys.stderr)
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

    def table(pick: np.ndarray, title: str) -> tuple[list[str], dict]:
        lines = [f"| predictor | {title}: Spearman [95% CI], {int(pick.sum())} chains | minus {ref} (paired) |",
                 "|---|---|---|"]
        rows = {}
        for name in names:
            vals = per_chain[name][pick]
            m, lo, hi = bootstrap_ci(vals, n_boot=args.n_boot)
            row = {"mean": m, "lo": lo, "hi": hi, "n_chains": int(pick.sum())}
            diff = ""
            if name != ref:
                d = paired_difference(vals, per_chain[ref][pick], n_boot=args.n_boot)
                row["minus_ref"] = list(d)
                diff = f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"
            rows[name] = row
            lines.append(f"| {name} | {m:.3f} [{lo:.3f}, {hi:.3f}] | {diff} |")
        return lines, rows

    everything = np.ones(len(chosen), dtype=bool)
    lines, rows = table(everything, "all")
    for name in names:
        rows[name]["per_chain"] = per_chain[name].tolist()
    result = {"data": args.data, "split": args.split, "ids": [str(r["id"]) for r in chosen], "rows": rows}
    if edges:
        n_tok = np.array([len(t) for t in true])
        result["n_reasoning_tokens"] = n_tok.tolist()
        result["by_length"] = {}
        for label, pick in length_buckets(n_tok, edges):
            if pick.sum() < 2:  # no interval from one chain or none
                result["by_length"][label] = {"n_chains": int(pick.sum())}
                lines += ["", f"{label} tokens: {int(pick.sum())} chain(s), too few for an interval"]
                continue
            more, result["by_length"][label] = table(pick, f"{label} tokens")
            lines += ["", *more]
    print("\n".join(lines))
    if args.out:
        from predictor.jsonl_io import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
