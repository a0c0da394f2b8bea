"""Transfer across LMs: a predictor trained on one LM's greedy ranks, with architecture-agnostic
features only (attention pooled over relative depth and all heads, logits, position, lexical),
scored against another LM's greedy ranks with no labels from it.

    python benchmarks/transfer.py --source-data data/ranked/gsm8k-smollm2-joint.jsonl \\
        --target-model gemma3-270m --target-data data/ranked/gemma3-270m/gsm8k-gemma3-joint.jsonl

Trains LightGBM regression on the source file's training split (full chains), early-stopped on its
validation split; prints mean per-chain Spearman [95% CI] on the source's test split and on every
target chain, next to single-signal baselines computed on the target LM (surprisal, position).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

AGNOSTIC = ("pooled_attention", "logits", "position", "lexical")


def _tables(lm, records, spec, cache):
    from predictor.ranked import record_chain

    X, y = [], []
    for r in records:
        t = cache.features_for(lm, record_chain(r), spec)
        X.append(t.values)
        y.append((np.asarray(r["ranks"], dtype=np.float64) - 1) / max(len(r["ranks"]) - 1, 1))
    return X, y, t.names


def main(argv=None) -> int:
    import torch

    from predictor.evaluation.metrics import bootstrap_ci, per_chain_spearman
    from predictor.feature_cache import FeatureCache
    from predictor.features import FeatureSpec
    from predictor.lm import load_lm
    from predictor.ranked import read_ranked
    from predictor.regressors import make_regressor
    from predictor.splits import split_ids

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source-data", default="data/ranked/gsm8k-smollm2-joint.jsonl")
    ap.add_argument("--source-model", default=None)
    ap.add_argument("--target-data", default="data/ranked/gemma3-270m/gsm8k-gemma3-joint.jsonl")
    ap.add_argument("--target-model", default="gemma3-270m")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = FeatureSpec(groups=AGNOSTIC)
    cache = FeatureCache()
    src = read_ranked(args.source_data, objective="joint")
    split = split_ids([r["id"] for r in src])
    by_id = {r["id"]: r for r in src}
    src_lm = load_lm(args.source_model)
    parts = {k: _tables(src_lm, [by_id[i] for i in split[k]], spec, cache) for k in ("train", "val", "test")}
    names = parts["train"][2]
    reg = make_regressor("lgbm-regression", seed=0, n_jobs=args.threads)
    reg.fit(parts["train"][0], parts["train"][1], parts["val"][0], parts["val"][1], feature_names=names)
    del src_lm
    tgt = read_ranked(args.target_data, objective="joint")
    tgt_lm = load_lm(args.target_model)
    Xt, yt, names_t = _tables(tgt_lm, tgt, spec, cache)
    if names_t != names:
        raise SystemExit("feature columns differ between the LMs: the groups are not architecture-agnostic")

    def row(label, pred, true):
        m, lo, hi = bootstrap_ci(per_chain_spearman(pred, true))
        print(f"| {label} | {len(true)} | {m:.3f} [{lo:.3f}, {hi:.3f}] |")

    print(f"source {args.source_data} ({len(split['train'])} train / {len(split['val'])} val chains), "
          f"target {args.target_data} ({len(tgt)} chains), features {','.join(AGNOSTIC)} ({len(names)})\n")
    print("| predictor -> chains | chains | mean per-chain Spearman [95% CI] |\n|---|---|---|")
    row("source-trained, on the source's test split", reg.predict(parts["test"][0]), parts["test"][1])
    row("source-trained, on the target LM's chains (transfer)", reg.predict(Xt), yt)
    j = names.index("logit.surprisal")
    sign = 1.0 if np.nanmean([np.corrcoef(x[:, j], t)[0, 1] for x, t in zip(parts["train"][0], parts["train"][1])
                              ]) >= 0 else -1.0
    row("surprisal (target LM), sign fitted on the source", [sign * x[:, j] for x in Xt], yt)
    row("position (later = kept longer)", [x[:, names.index("pos.frac")] for x in Xt], yt)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
