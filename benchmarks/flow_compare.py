"""Validation table of the ablation runs: mean per-chain Spearman [95% CI] and paired differences vs the first run."""
import json, sys
import numpy as np
from predictor.metrics import bootstrap_ci

runs = sys.argv[1:]
per, ids = {}, None
for r in runs:
    m = json.load(open(f"{r}/metrics.json"))
    row = next(x for x in m["rows"] if x["kind"] == "lgbm-regression")
    per[r] = (np.array(row["val"]["per_chain"]), m["n_features"], row["fit_seconds"])
    ids = ids or m["split"]["val"]
    assert m["split"]["val"] == ids
base = per[runs[0]][0]
print(f"| run | features | val mean per-chain Spearman [95% CI] | paired diff vs {runs[0].split('/')[-1]} [95% CI] | fit s |")
print("|---|---|---|---|---|")
for r in runs:
    v, nf, fs = per[r]
    m, lo, hi = bootstrap_ci(v)
    d = bootstrap_ci(v - base) if r != runs[0] else None
    ds = f"{d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}]" if d else "-"
    print(f"| {r.split('/')[-1]} | {nf} | {m:.4f} [{lo:.4f}, {hi:.4f}] | {ds} | {fs:.0f} |")
print(f"({len(base)} validation chains)")
