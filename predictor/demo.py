"""The package's main job in a few minutes on a CPU (`make demo`, `predictor demo`).

1. the shipped predictor ranks the held-out (test split) chains of the ranked GSM8K file, next to the
   one-pass baselines, all from one forward pass per chain: mean per-chain Spearman with the exact
   greedy ranks, 95% bootstrap interval over chains;
2. it prunes one held-out chain at a few budgets and prints the texts (and greedy's, same budget);
3. a token heatmap of that chain (HTML + PNG, `predictor.show`);
4. a small LightGBM predictor trained on a subset of the training chains (one pass each, full chains
   only) scores the same held-out chains.

Results go to stdout; progress to stderr. The full retraining of the shipped predictor is `make train`.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEMO_DATA = "data/ranked/gsm8k-smollm2-joint.jsonl"


@dataclass
class DemoConfig:
    data: str = DEMO_DATA
    out: str = "runs/demo"
    train_chains: int = 30  # training chains of the small predictor (the first of the train split)
    val_chains: int = 8  # its early-stopping chains (the first of the val split)
    budgets: tuple[float, ...] = (0.75, 0.5, 0.25)
    threads: int | None = 1
    n_boot: int = 2000
    progress: bool = True


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _bar(items, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="chain", leave=False, disable=not enabled, file=sys.stderr)


def held_out(records: list[dict], metadata: dict) -> list[dict]:
    """The test-split chains (predictor/splits.py, default fractions and seed) that the predictor
    neither trained nor selected on (its stored train/val ids and extra training ids are excluded)."""
    from .evaluation import seen_ids
    from .splits import split_ids

    test = set(split_ids([str(r["id"]) for r in records])["test"]) - seen_ids(metadata)
    return [r for r in records if str(r["id"]) in test]


def format_rows(rows: list[tuple[str, np.ndarray]], n_boot: int) -> str:
    """Name, mean per-chain Spearman [95% CI] per row; names are never cut."""
    from .metrics import bootstrap_ci

    width = max(len(name) for name, _ in rows)
    head = f"{'ranking method':{width}s}  Spearman with greedy [95% CI]"
    lines = [head, "-" * len(head)]
    for name, rho in rows:
        m, lo, hi = bootstrap_ci(rho, n_boot=n_boot, seed=0)
        lines.append(f"{name:{width}s}  {m:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    return "\n".join(lines)


def run_demo(cfg: DemoConfig) -> dict:
    """Run the four parts; returns {name: per-chain Spearman array} of part 1 and 4, and the paths written."""
    from .metrics import per_chain_spearman
    from .feature_cache import FeatureCache
    from .features import FeatureSpec, features_from_observation
    from .observe import observe
    from .rank_predictor import RankPredictor
    from .ranked import read_ranked, record_chain
    from .ranks import normalized_ranks
    from .regressors import make_regressor
    from .runtime import load_lm_on
    from .scorers import BASELINES, get_scorer
    from .show import kept_at_budget, token_view, write_html, write_png
    from .splits import split_ids

    t_start = time.perf_counter()
    out = Path(cfg.out)
    records = read_ranked(cfg.data, objective="joint")
    _log("loading the embedded LM and the shipped predictor ...")
    lm = load_lm_on(threads=cfg.threads)
    rp = RankPredictor.load(lm=lm)
    test = held_out(records, rp.scorer.metadata)
    true = [np.asarray(r["ranks"]) for r in test]

    # 1. one pass per held-out chain, every one-pass method on it
    print(f"\n== 1. ranking {len(test)} held-out chains of {cfg.data} ({sum(map(len, true))} tokens) ==")
    scorers = {f"shipped predictor ({rp.name})": rp.scorer, **{b: get_scorer(b) for b in BASELINES}}
    small_spec = FeatureSpec()  # the small predictor's features: the default groups, from the same pass
    ranks: dict[str, list[np.ndarray]] = {k: [] for k in scorers}
    test_tables = []
    t0 = time.perf_counter()
    for r in _bar(test, "rank held-out", cfg.progress):
        obs = observe(lm, record_chain(r), attention=True, **rp.scorer.observe_kwargs)
        for name, sc in scorers.items():
            ranks[name].append(np.asarray(sc.ranks(obs)))
        test_tables.append(features_from_observation(obs, small_spec))
    pass_s = (time.perf_counter() - t0) / max(1, len(test))
    rho = {name: per_chain_spearman(p, true) for name, p in ranks.items()}
    print(format_rows(list(rho.items()), cfg.n_boot))
    print(f"({pass_s:.2f} s per chain for the shared forward pass and all methods; exact greedy took "
          f"{np.mean([r.get('seconds', np.nan) for r in test]):.0f} s per chain to label these)")

    # 2. prune one chain at a few budgets (the held-out chain of median length)
    rec = sorted(test, key=lambda r: len(r["ranks"]))[len(test) // 2]
    chain = record_chain(rec)
    print(f"\n== 2. pruning held-out chain {rec['id']} ({len(rec['ranks'])} reasoning tokens) ==")
    print(f"question: {chain.question}\nfull reasoning:\n  {chain.reasoning.replace(chr(10), chr(10) + '  ')}")
    for keep in cfg.budgets:
        res = rp.prune(chain, keep)
        g_kept = kept_at_budget(np.asarray(rec["ranks"]), len(res.kept))
        g_text = lm.tokenizer.decode([rec["reasoning_ids"][i] for i in g_kept], clean_up_tokenization_spaces=False)
        print(f"keep {keep:.0%} ({len(res.kept)} tokens)\n  predictor: {res.text!r}\n  greedy:    {g_text!r}")

    # 3. the token heatmap of that chain
    view = token_view(rec, predictor=rp, keep_ratio=0.5)
    html_path, png_path = write_html(view, out / "heatmap.html"), write_png(view, out / "heatmap.png")
    print(f"\n== 3. token heatmap of {rec['id']}: {html_path}, {png_path} "
          f"(Spearman with greedy {view.spearman():+.3f}) ==")

    # 4. a small predictor trained here on a subset of the training chains
    split = split_ids([str(r["id"]) for r in records])
    by_id = {str(r["id"]): r for r in records}
    train = [by_id[i] for i in split["train"][: cfg.train_chains]]
    val = [by_id[i] for i in split["val"][: cfg.val_chains]]
    print(f"\n== 4. training a small predictor: LightGBM on {len(train)} training chains "
          f"({len(val)} for early stopping), full chains only ==")
    t0 = time.perf_counter()
    cache = FeatureCache()
    X_tr = [cache.features_for(lm, record_chain(r), small_spec).values
            for r in _bar(train, "features (train)", cfg.progress)]
    X_va = [cache.features_for(lm, record_chain(r), small_spec).values
            for r in _bar(val, "features (val)", cfg.progress)]
    feat_s = time.perf_counter() - t0
    reg = make_regressor("lgbm-regression", seed=0, n_jobs=cfg.threads or 1, learning_rate=0.08,
                         n_estimators=400, early_stopping_rounds=40)
    t0 = time.perf_counter()
    reg.fit(X_tr, [normalized_ranks(np.asarray(r["ranks"])) for r in train],
            X_va, [normalized_ranks(np.asarray(r["ranks"])) for r in val],
            feature_names=test_tables[0].names)
    fit_s = time.perf_counter() - t0
    small = per_chain_spearman(reg.predict([t.values for t in test_tables]), true)
    name = f"small LightGBM ({len(train)} chains, trained just now)"
    print(format_rows([(f"shipped predictor ({rp.name})", rho[f"shipped predictor ({rp.name})"]), (name, small)],
                      cfg.n_boot))
    print(f"({len(test_tables[0].names)} features; {feat_s:.0f} s of feature passes, {fit_s:.0f} s of LightGBM. "
          "The shipped predictor trained on "
          f"{rp.scorer.metadata.get('n_train_chains', '?')} chains and their pruned states: `make train`.)")
    print(f"\ndemo done in {time.perf_counter() - t_start:.0f} s")
    rho[name] = small
    return {"spearman": rho, "heatmap_html": str(html_path), "heatmap_png": str(png_path)}
