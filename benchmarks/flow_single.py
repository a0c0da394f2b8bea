"""Validation per-chain Spearman of single columns (full chains, from the wide run's feature cache)."""
import json, sys
import numpy as np
from predictor.chains import as_chain
from predictor.feature_cache import FeatureCache
from predictor.features import DEFAULT_GROUPS, FeatureSpec
from predictor.metrics import bootstrap_ci, per_chain_spearman

data, run, cache, lm_fp = sys.argv[1:5]
val = set(json.load(open(f"{run}/metrics.json"))["split"]["val"])
recs = [r for r in map(json.loads, open(data)) if r["id"] in val]
spec = FeatureSpec(groups=DEFAULT_GROUPS + ("value_norm", "multihop"))
fc = FeatureCache(cache)
tabs = [fc.get(lm_fp, spec, as_chain({f: r[f] for f in ("id", "question", "reasoning", "answer")})) for r in recs]
y = [np.asarray(r["ranks"]) for r in recs]
for col in sys.argv[5:]:
    m, lo, hi = bootstrap_ci(per_chain_spearman([t.column(col) for t in tabs], y))
    print(f"| `{col}` | {m:+.3f} [{lo:+.3f}, {hi:+.3f}] |")
