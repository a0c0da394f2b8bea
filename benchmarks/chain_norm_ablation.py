r"""Do chain-normalized copies of the strongest columns help the one-pass predictor on chain styles it never saw?

Tree models split on raw values, and raw values shift with the chain style: surprisal, attention mass and
the local gain of a LaTeX solution sit elsewhere than those of a GSM8K word problem. A ranking needs only
which tokens of *this* chain stand out. The leave-one-out ablation hinted at it (`reports/loo/report.md`:
the z-scored and within-chain-rank loo columns took 0.34 of the split gain, the raw gain 0.05). Here:

- A: the shipped predictor's feature spec, as cached (LightGBM regression, state 0, seed 0);
- Z: A plus, for the K columns with the largest split gain in A's fit (training chains only), their
  z-score within the chain ((x - mean) / (std + 1e-6) over the chain's tokens);
- R: A plus the same K columns' within-chain ranks ((average rank - 0.5) / n, ascending).

Every variant trains on the shipped predictor's training ids (GSM8K, AQuA, StrategyQA), early-stops on its
validation ids, and predicts the validation chains and every chain of the `--unseen` files (exact labels
never trained on: the long GSM8K file, other domains). Per-chain Spearman with greedy; report = per group,
each variant [95% CI] and its paired difference to A.

    python benchmarks/chain_norm_ablation.py fit --variants A,Z,R --top 256 --out reports/chain_norm --threads 1 \
        --unseen data/ranked/long/gsm8k-smollm2-joint.jsonl data/ranked/math/math-smollm2-joint.jsonl
    python benchmarks/chain_norm_ablation.py report --out reports/chain_norm
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILES = ("data/ranked/gsm8k-smollm2-joint.jsonl", "data/ranked/aqua/aqua-smollm2-joint.jsonl",
         "data/ranked/strategyqa/strategyqa-smollm2-joint.jsonl")
PREDICTOR = ROOT / "predictor/pretrained/smollm2-joint"
VARIANTS = ("A", "Z", "R")


def chain_normalized(X: np.ndarray, kind: str) -> np.ndarray:
    """float32 [n, k]: each column of X [n, k] z-scored ("Z") or ranked ((average rank - 0.5) / n, "R")
    within the chain."""
    from scipy.stats import rankdata

    X = np.asarray(X, dtype=np.float64)
    if kind == "Z":
        out = (X - X.mean(0)) / (X.std(0) + 1e-6)
    elif kind == "R":
        out = (rankdata(X, axis=0) - 0.5) / len(X)
    else:
        raise ValueError(f"kind must be 'Z' or 'R', got {kind!r}")
    return out.astype(np.float32)


def _records(unseen: list[str]) -> list[tuple[str, str, dict]]:
    """(part, group, record): part 'train' / 'val' / 'unseen'; group = domain (val) or file stem (unseen)."""
    from predictor.domains import chain_domain
    from predictor.predictor_dir import read_metadata, split_records

    out = [(part, f"{chain_domain(r)} validation", r)
           for part, r in split_records(PREDICTOR, [ROOT / f for f in FILES])]
    tr = set(read_metadata(PREDICTOR)["split"]["train"])
    for f in unseen:
        recs = [json.loads(line) for line in open(f) if line.strip()]
        clash = [r["id"] for r in recs if r["id"] in tr]
        if clash:
            raise SystemExit(f"{f}: {len(clash)} chains (e.g. {clash[0]}) are training chains, not unseen")
        out += [("unseen", f"{Path(f).parent.name}/{Path(f).stem} (unseen)", r) for r in recs]
    return out


def fit(args) -> None:
    from scipy.stats import spearmanr

    from predictor import load_lm
    from predictor.feature_cache import FeatureCache
    from predictor.features import FeatureSpec
    from predictor.ranks import normalized_ranks
    from predictor.regressors.lgbm import LGBMRankRegressor

    meta = json.loads((PREDICTOR / "predictor.json").read_text())
    spec = FeatureSpec.from_dict(meta["feature_spec"])
    lm, cache = load_lm(), FeatureCache()
    recs = _records(args.unseen)
    t0 = time.time()
    tables = cache.features_for_many(lm, [{k: r[k] for k in ("id", "question", "reasoning", "answer")}
                                          for _, _, r in recs], spec)
    names = tables[0].names
    data = [(t.values, normalized_ranks(r["ranks"]), part, group, r["id"]) for (part, group, r), t in zip(recs, tables)]
    print(f"features of {len(data)} chains in {time.time() - t0:.0f} s; "
          + ", ".join(f"{p}: {sum(d[2] == p for d in data)}" for p in ("train", "val", "unseen")), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    top: list[int] | None = None
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
        if variant != "A" and top is None:
            a = json.loads((out / "fit_A.json").read_text())  # K from A's fit: training chains only
            top = [names.index(n) for n in a["top_columns"][: args.top]]
        extra = [] if variant == "A" else [f"{names[j]}.{variant.lower()}" for j in top]

        def X_of(values: np.ndarray) -> np.ndarray:
            return values if variant == "A" else np.hstack([values, chain_normalized(values[:, top], variant)])

        train = [d for d in data if d[2] == "train"]
        val = [d for d in data if d[2] == "val"]
        model = LGBMRankRegressor(objective="regression", seed=0, n_jobs=args.threads)
        t = time.time()
        model.fit([X_of(d[0]) for d in train], [d[1] for d in train], [X_of(d[0]) for d in val], [d[1] for d in val],
                  feature_names=names + extra)
        scored = [d for d in data if d[2] != "train"]
        preds = model.predict([X_of(d[0]) for d in scored])
        rho = {d[4]: float(spearmanr(d[1], p)[0]) for d, p in zip(scored, preds)}
        imp = model.booster_.feature_importance("gain")
        order = np.argsort(-imp)
        added = float(imp[len(names):].sum() / imp.sum()) if extra else 0.0
        (out / f"fit_{variant}.json").write_text(json.dumps({
            "variant": variant, "top": len(extra), "seconds": time.time() - t,
            "train_ids": sorted(d[4] for d in train), "spearman": rho, "group": {d[4]: d[3] for d in scored},
            "top_columns": [(names + extra)[j] for j in order[:1024]], "added_gain_share": added}, indent=1))
        print(f"fit {variant}: {time.time() - t:.0f} s, {len(names) + len(extra)} columns; "
              f"the added columns' share of split gain {added:.3f}", flush=True)


def report(args) -> None:
    from predictor.metrics import bootstrap_ci

    out = Path(args.out)
    fits = {v: json.loads((out / f"fit_{v}.json").read_text()) for v in VARIANTS if (out / f"fit_{v}.json").exists()}
    if "A" not in fits:
        raise SystemExit(f"{out}/fit_A.json: run the A fit first")
    a = fits["A"]
    others = [v for v in fits if v != "A"]
    for v in others:
        if fits[v]["train_ids"] != a["train_ids"]:
            raise SystemExit(f"A and {v} trained on different chains: re-run them together")
    head = " | ".join(f"{v} (+{fits[v]['top']} {'z-scored' if v == 'Z' else 'ranked'})" for v in others)
    rows = [f"| chains | n | A: shipped spec | {head} | " + " | ".join(f"{v} minus A" for v in others) + " |",
            "|---|---|---|" + "---|" * (2 * len(others))]
    fmt = lambda t: f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"  # noqa: E731
    for group in sorted(set(a["group"].values()), key=lambda g: ("unseen" in g, g)):
        ids = [k for k in a["spearman"] if a["group"][k] == group and all(k in fits[v]["spearman"] for v in others)]
        cells = [fmt(bootstrap_ci([a["spearman"][k] for k in ids]))]
        cells += [fmt(bootstrap_ci([fits[v]["spearman"][k] for k in ids])) for v in others]
        diffs = [bootstrap_ci([fits[v]["spearman"][k] - a["spearman"][k] for k in ids]) for v in others]
        cells += [f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]" for d in diffs]
        rows.append(f"| {group} | {len(ids)} | " + " | ".join(cells) + " |")
    rows.append(f"\n{len(a['train_ids'])} training chains; the added columns' share of split gain: "
                + ", ".join(f"{v} {fits[v]['added_gain_share']:.3f}" for v in others))
    text = "\n".join(rows)
    (out / "report.md").write_text(text + "\n")
    print(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="phase", required=True)
    f = sub.add_parser("fit", help="fit the variants (A first: it picks the K columns)")
    f.add_argument("--variants", default="A,Z,R", help="comma-separated among A, Z, R (default: %(default)s)")
    f.add_argument("--top", type=int, default=256, help="K, the columns normalized (default: %(default)s)")
    f.add_argument("--unseen", nargs="*", default=[], help="ranked files never trained on, scored whole")
    f.add_argument("--out", default="reports/chain_norm")
    f.add_argument("--threads", type=int, default=1)
    r = sub.add_parser("report", help="the table from the fits under --out")
    r.add_argument("--out", default="reports/chain_norm")
    args = ap.parse_args(argv)
    if args.phase == "fit":
        import torch

        torch.set_num_threads(args.threads)
        fit(args)
    else:
        report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
