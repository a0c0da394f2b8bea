"""Validation score of a rank-average ensemble of a subset of a training run's saved models, paired
against the predictor the run selected (no retraining; the run's own validation chains, full states).

    python benchmarks/ensemble_subset_val.py --run runs/dom/train --members lgbm-regression,sequence

`train` tries each regressor and the ensemble of all of them; this asks whether a smaller ensemble
(e.g. without a weak member) would have been chosen instead. Prints mean per-chain Spearman [95% CI]
of both and the paired difference; --json writes the per-chain values.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a `train` output directory (predictor/, models/KIND/)")
    ap.add_argument("--members", required=True, help="comma-separated model kinds under RUN/models/")
    ap.add_argument("--json", default=None, help="write per-chain values here")
    args = ap.parse_args(argv)
    run, kinds = Path(args.run), [k for k in args.members.split(",") if k]
    missing = [k for k in kinds if not (run / "models" / k).is_dir()]
    if len(kinds) < 2 or missing or not (run / "predictor").is_dir():
        ap.error(f"need >= 2 models under {run}/models/ and {run}/predictor/ (missing: {', '.join(missing) or '-'})")

    from predictor.evaluation.ablation import paired_difference
    from predictor.feature_cache import FeatureCache
    from predictor.features import FeatureSpec
    from predictor.metrics import bootstrap_ci, per_chain_spearman
    from predictor.predictor_dir import load_predictor
    from predictor.ranked import read_ranked
    from predictor.regressors.ensemble import EnsembleRegressor
    from predictor.runtime import load_lm_on
    from predictor.training_data import build_training_data

    selected, meta = load_predictor(run / "predictor")
    subset = EnsembleRegressor.from_fitted([load_predictor(run / "models" / k)[0] for k in kinds], seed=meta["seed"])
    val = set(meta["split"]["val"])
    files = [meta["train_data"]] + [d["path"] for d in meta.get("domain_data", [])]
    recs = [r for f in files for r in read_ranked(f, objective=meta["objective"]) if str(r["id"]) in val]
    lm = load_lm_on(meta.get("lm_name"), "cpu", 1)
    data = build_training_data(recs, lm, FeatureSpec.from_dict(meta["feature_spec"]), (0.0,), cache=FeatureCache(),
                               progress=False)
    X, y = data.select([str(r["id"]) for r in recs])
    rho_sel, rho_sub = per_chain_spearman(selected.predict(X), y), per_chain_spearman(subset.predict(X), y)
    name = " + ".join(kinds)
    print(f"{len(recs)} validation chains of {run}")
    for label, rho in (("selected: " + meta["regressor"], rho_sel), (f"ensemble ({name})", rho_sub)):
        m, lo, hi = bootstrap_ci(rho)
        print(f"{label}: {m:.3f} [{lo:.3f}, {hi:.3f}]")
    d = paired_difference(rho_sub, rho_sel)
    print(f"ensemble ({name}) minus selected: {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]")
    if args.json:
        from predictor.jsonl_io import atomic_write_text

        atomic_write_text(args.json, json.dumps({"ids": [str(r["id"]) for r in recs], "selected": rho_sel.tolist(),
                                                 "subset": rho_sub.tolist(), "members": kinds}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
