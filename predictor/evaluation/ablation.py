"""Feature-group ablation of the learned predictor: the same regressor retrained on feature subsets.

Every family is trained on the same training chains and scored on the same held-out chains, so
the differences are due to the features alone. `findings` turns the numbers into a paragraph.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..ranks import normalized_ranks
from ..metrics import bootstrap_ci, summarize

ABLATION_FAMILIES: dict[str, tuple[str, ...]] = {
    "attention only": ("attention", "probe"),
    "logits only": ("logits",),
    "position + lexical": ("position", "lexical"),
    "all but attention": ("logits", "position", "lexical"),
    "all": ("attention", "probe", "logits", "position", "lexical"),
    "hidden states only": ("hidden",),
    "hidden + attention": ("hidden", "attention", "probe"),
    "all + hidden": ("attention", "probe", "logits", "position", "lexical", "hidden"),
}


FAST_LGBM = {"objective": "regression", "n_estimators": 300, "learning_rate": 0.05, "num_leaves": 15}


def default_regressor(seed: int = 0, **params):
    """The package's LightGBM rank regressor with fast settings (overridable by `params`)."""
    from ..regressors.lgbm import LGBMRankRegressor

    return LGBMRankRegressor(**{**FAST_LGBM, "seed": seed, **params})


def run_ablation(train_tables: Sequence, train_ranks: Sequence[np.ndarray], test_tables: Sequence,
                 test_ranks: Sequence[np.ndarray], families: Mapping[str, Sequence[str]] = ABLATION_FAMILIES,
                 make_regressor: Callable[[], object] | None = None, n_boot: int = 2000, seed: int = 0,
                 progress=None) -> dict[str, dict]:
    """Family -> {groups, n_features, summarize(...) on the test chains} (+ "predictions" not kept).

    tables: FeatureTable per chain (with `.select(groups)` and `.values`); ranks: greedy ranks.
    A family whose groups are absent from the tables is reported with n_features 0 and skipped.
    """
    make = make_regressor or (lambda: default_regressor(seed))
    y_train = [normalized_ranks(r) for r in train_ranks]
    out = {}
    items = list(families.items())
    for name, groups in (progress(items, desc="ablation") if progress else items):
        tr = [t.select(groups).values for t in train_tables]
        te = [t.select(groups).values for t in test_tables]
        n_feat = int(tr[0].shape[1]) if tr else 0
        if n_feat == 0:
            out[name] = {"groups": list(groups), "n_features": 0, "skipped": "no such feature columns"}
            continue
        model = make().fit([np.asarray(x, np.float32) for x in tr], y_train)
        pred = [np.asarray(p, dtype=np.float64) for p in model.predict([np.asarray(x, np.float32) for x in te])]
        out[name] = {"groups": list(groups), "n_features": n_feat, "n_train_chains": len(tr),
                     **summarize(pred, list(test_ranks), n_boot=n_boot, seed=seed)}
    return out


def paired_difference(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0):
    """Mean [lo, hi] of the per-chain difference a - b (same chains), a paired bootstrap."""
    return bootstrap_ci(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), n_boot=n_boot, seed=seed)


def _fmt(m: float, lo: float, hi: float) -> str:
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def findings(results: Mapping[str, dict], n_boot: int = 2000, seed: int = 0) -> str:
    """A short paragraph generated from the ablation numbers (no adjectives without numbers)."""
    ok = {k: v for k, v in results.items() if v.get("n_features")}
    if not ok:
        return "No ablation results."

    def cell(k):
        v = ok[k]
        return _fmt(v["spearman_mean"], v["spearman_lo"], v["spearman_hi"])

    parts = []
    n = next(iter(ok.values()))["n_chains"]
    if "attention only" in ok:
        parts.append(f"Attention features alone reach a mean per-chain Spearman of {cell('attention only')} "
                     f"with the greedy ranks on {n} held-out chains.")
    for other in ("logits only", "position + lexical", "all but attention"):
        if other in ok:
            parts.append(f"{other.capitalize()}: {cell(other)}.")
    if "all" in ok:
        parts.append(f"All features: {cell('all')}.")

    def diff(a, b, text):
        if a in ok and b in ok:
            m, lo, hi = paired_difference(ok[a]["per_chain_spearman"], ok[b]["per_chain_spearman"], n_boot, seed)
            verdict = ("an improvement" if lo > 0 else "a loss" if hi < 0 else "not distinguishable from zero")
            parts.append(f"{text} changes Spearman by {m:+.3f} [{lo:+.3f}, {hi:+.3f}] (paired over chains; "
                         f"{verdict} at 95%).")

    diff("all", "attention only", "Adding the non-attention signals (logits, position, lexical) to attention")
    diff("all", "all but attention", "Adding attention to the non-attention signals")
    if "hidden states only" in ok:
        parts.append(f"The residual stream alone (hidden states at 4 relative depths): {cell('hidden states only')}.")
    diff("hidden states only", "attention only", "Hidden states instead of attention")
    diff("hidden + attention", "hidden states only", "Adding attention to the hidden states")
    diff("all + hidden", "all", "Adding hidden states to all other features")
    best = max(ok, key=lambda k: ok[k]["spearman_mean"])
    parts.append(f"The best family is '{best}' ({cell(best)}).")
    return " ".join(parts)
