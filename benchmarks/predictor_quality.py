"""Predictor quality on one fixed split: feature families x regressors, and a learning curve.

Every row is trained on the same training chains (the main file's training split, their pruned
states, plus the extra file's chains as full states), early-stopped and selected on the validation
chains, and scored on the same test chains: mean per-chain Spearman with greedy [95% bootstrap CI]
and the paired difference to the first row. The test numbers are reported, never used for a choice.

    python benchmarks/predictor_quality.py --out runs/quality            # the feature/regressor table
    python benchmarks/predictor_quality.py --curve --out runs/quality    # + learning curve 25/50/100%

Features come from the feature cache (one forward pass per chain and state; computed on a miss).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from predictor.evaluation.ablation import paired_difference  # noqa: E402
from predictor.metrics import bootstrap_ci, per_chain_spearman  # noqa: E402

BASE = ("attention", "probe", "logits", "position", "lexical")
# name -> (feature groups, regressor kind, params)
CONFIGS: dict[str, tuple[tuple[str, ...], str, dict]] = {
    "lgbm-regression on base": (BASE, "lgbm-regression", {}),
    "sequence on base": (BASE, "sequence", {}),
    "ridge on hidden": (("hidden",), "ridge", {}),
    "lgbm-regression on hidden + position": (("hidden", "position"), "lgbm-regression", {}),
    "sequence on hidden + position": (("hidden", "position"), "sequence", {}),
    "sequence on base + hidden": (BASE + ("hidden",), "sequence", {}),
    "lgbm-regression on base + hidden": (BASE + ("hidden",), "lgbm-regression", {}),
}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load(args):
    import torch

    from predictor.feature_cache import FeatureCache
    from predictor.features import FeatureSpec
    from predictor.lm import load_lm
    from predictor.ranked import read_ranked
    from predictor.splits import split_ids
    from predictor.training_data import build_training_data

    torch.set_num_threads(args.threads)
    main = read_ranked(args.data, objective="joint")
    ids = {r["id"] for r in main}
    extra = [r for r in read_ranked(args.extra_train, objective="joint") if r["id"] not in ids] if args.extra_train else []
    lm = load_lm(args.model)
    spec = FeatureSpec(groups=BASE + ("hidden",))
    split = split_ids([r["id"] for r in main])
    data = build_training_data(main + extra, lm, spec, (0.0, 0.25, 0.5, 0.75), state_ids=split["train"],
                               cache=FeatureCache(args.cache), progress=args.progress)
    return data, split, [r["id"] for r in extra]


def run_config(data, groups, kind, params, train_ids, split, seed=0):
    from predictor.regressors import make_regressor

    cols = [i for i, g in enumerate(data.feature_groups) if g in set(groups)]
    names = [data.feature_names[i] for i in cols]

    def sel(ids, fr):
        X, y = data.select(ids, fractions=fr)
        return [x[:, cols] for x in X], y

    X_tr, y_tr = sel(train_ids, None)
    X_va, y_va = sel(split["val"], (0.0,))
    X_te, y_te = sel(split["test"], (0.0,))
    reg = make_regressor(kind, seed=seed, **params)
    t0 = time.perf_counter()
    reg.fit(X_tr, y_tr, X_va, y_va, feature_names=names)
    fit_s = time.perf_counter() - t0
    pv, pt = reg.predict(X_va), reg.predict(X_te)
    return {"val": per_chain_spearman(pv, y_va), "test": per_chain_spearman(pt, y_te), "fit_seconds": fit_s,
            "n_features": len(cols), "n_train": len(X_tr), "pred": (pv, pt), "true": (y_va, y_te)}, reg


def rank_average(results: list[dict]) -> dict:
    """The rank average of several rows' predictions (per chain), scored like a row."""
    from scipy.stats import rankdata

    out = {"fit_seconds": sum(r["fit_seconds"] for r in results), "n_features": max(r["n_features"] for r in results),
           "n_train": results[0]["n_train"]}
    for k, part in enumerate(("val", "test")):
        preds = [np.mean([rankdata(r["pred"][k][i]) for r in results], axis=0)
                 for i in range(len(results[0]["pred"][k]))]
        out[part] = per_chain_spearman(preds, results[0]["true"][k])
    return out


def fmt(v):
    m, lo, hi = bootstrap_ci(v)
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def fmt_diff(a, b):
    m, lo, hi = paired_difference(a, b)
    return f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def table(results: dict) -> str:
    ref = next(iter(results.values()))
    lines = ["| predictor | features | validation | test | test - first row (paired) | fit s |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['n_features']} | {fmt(r['val'])} | {fmt(r['test'])} | "
                     f"{fmt_diff(r['test'], ref['test']) if r is not ref else '-'} | {r['fit_seconds']:.0f} |")
    return "\n".join(lines)


def _save(out: Path, results: dict) -> None:
    keep = ("val", "test", "fit_seconds", "n_features", "n_train")
    (out / "results.json").write_text(json.dumps({k: {f: (v[f].tolist() if hasattr(v[f], "tolist") else v[f])
                                                      for f in keep} for k, v in results.items()}, indent=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/ranked/gsm8k-smollm2-joint.jsonl")
    ap.add_argument("--extra-train", default="data/ranked/variant-eos-im_start/gsm8k-smollm2-joint.jsonl")
    ap.add_argument("--model", default=None)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names of CONFIGS")
    ap.add_argument("--ensemble", action="store_true", help="add the rank average of the non-ridge rows")
    ap.add_argument("--curve", action="store_true", help="learning curve (25/50/100%% of training chains)")
    ap.add_argument("--curve-config", default="sequence on base")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/quality")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data, split, extra_ids = load(args)
    train_ids = split["train"] + extra_ids
    _log(f"{len(split['train'])} train (+{len(extra_ids)} extra) / {len(split['val'])} val / {len(split['test'])} test")
    results = {}
    for name in [c.strip() for c in args.configs.split(",") if c.strip()]:
        groups, kind, params = CONFIGS[name]
        r, _ = run_config(data, groups, kind, {"progress": False, **params}, train_ids, split)
        results[name] = r
        _log(f"{name}: val {fmt(r['val'])} test {fmt(r['test'])} ({r['fit_seconds']:.0f} s)")
        _save(out, results)
    if args.ensemble and len(results) > 1:
        members = [k for k in results if not k.startswith("ridge")]
        results[f"rank average of {len(members)} rows above"] = rank_average([results[k] for k in members])
        _save(out, results)
    if results:
        print(table(results))
    if args.curve:
        groups, kind, params = CONFIGS[args.curve_config]
        rng = np.random.default_rng(0)
        main_tr, ex = list(split["train"]), list(extra_ids)
        rng.shuffle(main_tr)
        rng.shuffle(ex)
        curve = {}
        for frac in (0.25, 0.5, 1.0):
            ids = main_tr[: round(frac * len(main_tr))] + ex[: round(frac * len(ex))]
            r, _ = run_config(data, groups, kind, {"progress": False, **params}, ids, split)
            curve[f"{int(frac * 100)}% ({len(ids)} chains)"] = r
            _log(f"curve {frac}: test {fmt(r['test'])}")
        print(f"\nLearning curve, {args.curve_config}:\n" + table(curve))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
