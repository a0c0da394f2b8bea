"""AQuA transfer of each ablation run's lgbm-regression (never trained on AQuA) and the gain share of each group."""
import json, sys
import numpy as np
from predictor.chains import as_chain
from predictor.features import extract_features_many, feature_names, FeatureSpec
from predictor.metrics import bootstrap_ci, per_chain_spearman
from predictor.predictor_dir import load_predictor
from predictor.runtime import load_lm_on

aqua, runs = sys.argv[1], sys.argv[2:]
recs = [json.loads(l) for l in open(aqua)]
chains = [as_chain({f: r[f] for f in ("id", "question", "reasoning", "answer")}) for r in recs]
lm = load_lm_on(None, "cpu", 1)
wide = FeatureSpec.from_dict(load_predictor(f"{runs[-1]}/models/lgbm-regression")[1]["feature_spec"])
tables = extract_features_many(lm, chains, wide)  # the widest run's spec; narrower ones select its columns
per, base = {}, None
for r in runs:
    reg, meta = load_predictor(f"{r}/models/lgbm-regression")
    spec = FeatureSpec.from_dict(meta["feature_spec"])
    X = [t.select(spec.groups).values for t in tables]
    assert tables[0].select(spec.groups).names == meta["feature_names"]
    rho = per_chain_spearman(reg.predict(X), [np.asarray(x["ranks"]) for x in recs])
    base = rho if base is None else base
    m, lo, hi = bootstrap_ci(rho)
    d = bootstrap_ci(rho - base)
    gain = reg.feature_importance("gain")
    _, groups = feature_names(spec, lm.num_layers, lm.num_heads)
    share = {g: float(gain[[i for i, x in enumerate(groups) if x == g]].sum() / gain.sum()) for g in spec.groups}
    print(f"| {r.split('/')[-1]} | {m:.4f} [{lo:.4f}, {hi:.4f}] | {d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}] | "
          + ", ".join(f"{g} {s:.1%}" for g, s in share.items()) + " |")
print(f"({len(recs)} AQuA chains)")
