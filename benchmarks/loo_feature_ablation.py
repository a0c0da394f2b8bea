r"""Do exact leave-one-out gains, as features, raise one-pass agreement? (issue 28: a tier between one pass
and the search)

Leave-one-out (`scorers.leave_one_out`) is greedy's exact first step: the JOINT objective after deleting
each reasoning token alone, n candidate scorings, ~n^2/2 + n a LM tokens (about 6% of the exact search's
at n = 100, 14% at n = 50). Three phases, each resumable:

    # 1. gains: one .npy per chain (objective without token i minus the full objective, float [n]) under
    #    --gains; validation chains first, then the long file, then training; --part/--parts split the work
    python benchmarks/loo_feature_ablation.py gains --gains runs/loo/gains --part 0 --parts 2 --threads 1
    # 2. fit: LightGBM regression at state 0 (the full chains) on the shipped predictor's cached feature
    #    table, without (A) and with (B) four leave-one-out columns; train = its train ids, early stopping on
    #    its validation ids; writes per-chain validation and long-chain Spearman to --out/fit_{A,B}.json
    python benchmarks/loo_feature_ablation.py fit --variant A --gains runs/loo/gains --out reports/loo --threads 1
    python benchmarks/loo_feature_ablation.py fit --variant B --gains runs/loo/gains --out reports/loo --threads 1
    # 3. report: per domain, A and B [95% CI] and B minus A, paired
    python benchmarks/loo_feature_ablation.py report --out reports/loo
    # cost: LM tokens and seconds of the gains against the exact search's records (default: the long file)
    python benchmarks/loo_feature_ablation.py cost --limit 10 --threads 1
    # before training with the loo group (train.py --config configs/smollm2-joint-loo.json): fill the
    # feature cache's loo tables of the full chains of the config's files, in parallel processes, passing
    # phase 1's gains where they were computed on the same token layout (else computing them)
    python benchmarks/loo_feature_ablation.py cache --config configs/smollm2-joint-loo.json --gains runs/loo/gains \
        --part 0 --parts 2 --threads 1

The columns of B: `loo.gain` (objective without i minus the full objective, nats), `loo.rest` (loo.gain minus
the `local.gain` column: what the later tokens' change adds to greedy's free local term), `loo.gain_z`
(z-score within the chain) and `loo.gain_rank` ((rank + 0.5) / n by decreasing gain). Chains: the shipped
predictor's train and validation ids in the GSM8K, AQuA and StrategyQA files, and every chain of the long file
(none trained on). Both variants train on the same chains with the same seed, so B minus A is the columns' effect.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILES = ("data/ranked/gsm8k-smollm2-joint.jsonl", "data/ranked/aqua/aqua-smollm2-joint.jsonl",
         "data/ranked/strategyqa/strategyqa-smollm2-joint.jsonl")
LONG = "data/ranked/long/gsm8k-smollm2-joint.jsonl"
PREDICTOR = ROOT / "predictor/pretrained/smollm2-joint"
LOO_COLUMNS = ["loo.gain", "loo.rest", "loo.gain_z", "loo.gain_rank"]


def _records() -> list[tuple[str, dict]]:
    """(part, record): 'val' / 'long' / 'train' chains, in that order (the order phase 1 computes them)."""
    from predictor.predictor_dir import split_records

    out = split_records(PREDICTOR, [ROOT / f for f in FILES])
    out += [("long", json.loads(line)) for line in open(ROOT / LONG) if line.strip()]
    return sorted(out, key=lambda pr: ("val", "long", "train").index(pr[0]))


def record_gains(lm, r: dict) -> np.ndarray:
    """float [n]: the JOINT objective with reasoning token i deleted minus the full objective (nats), on the
    record's own token layout (`greedy.leave_one_out.leave_one_out_gains`)."""
    from predictor.greedy.leave_one_out import leave_one_out_gains
    from predictor.layout import Layout

    return leave_one_out_gains(lm, Layout(r["prompt_ids"], r["reasoning_ids"], r["answer_ids"]), "joint")[0]


def gains(args) -> None:
    from predictor import load_lm

    lm = load_lm()
    todo = [r for _, r in _records()][args.part::args.parts]
    out = Path(args.gains)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for k, r in enumerate(todo):
        path = out / f"{r['id']}.npy"
        if path.exists():
            continue
        tmp = out / f".{r['id']}.tmp.npy"
        np.save(tmp, record_gains(lm, r))
        os.replace(tmp, path)
        print(f"{k + 1}/{len(todo)} {r['id']} n={len(r['ranks'])} {time.time() - t0:.0f} s", flush=True)


def loo_columns(g: np.ndarray, local_gain: np.ndarray) -> np.ndarray:
    """float32 [n, 4]: the B variant's columns (module doc) from gains g [n] and the local.gain column [n]."""
    from scipy.stats import rankdata

    g = np.asarray(g, dtype=np.float64)
    z = (g - g.mean()) / (g.std() + 1e-9)
    rank = (rankdata(-g) - 0.5) / len(g)
    return np.stack([g, g - local_gain, z, rank], 1).astype(np.float32)


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
    data: dict[str, tuple] = {}
    names: list[str] = []
    for part, r in _records():
        path = Path(args.gains) / f"{r['id']}.npy"
        if not path.exists():
            continue  # phase 1 not there yet: both variants see the same chains
        chain = {k: r[k] for k in ("id", "question", "reasoning", "answer")}
        table = cache.features_for(lm, chain, spec)
        names = table.names
        local = table.values[:, names.index("local.gain")].astype(np.float64)
        X = table.values if args.variant == "A" else np.hstack([table.values, loo_columns(np.load(path), local)])
        domain = "long" if part == "long" else r["id"].split("-")[0]
        data[r["id"]] = (X, normalized_ranks(r["ranks"]), domain, part)
    train = [v for v in data.values() if v[3] == "train"]
    val = [v for v in data.values() if v[3] == "val"]
    print(f"{len(train)} training, {len(val)} validation, {sum(v[3] == 'long' for v in data.values())} long chains",
          flush=True)
    model = LGBMRankRegressor(objective="regression", seed=0, n_jobs=args.threads)
    t = time.time()
    model.fit([v[0] for v in train], [v[1] for v in train], [v[0] for v in val], [v[1] for v in val],
              feature_names=names + (LOO_COLUMNS if args.variant == "B" else []))
    rho = {k: float(spearmanr(v[1], model.predict([v[0]])[0])[0]) for k, v in data.items() if v[3] != "train"}
    imp = model.booster_.feature_importance("gain")
    share = {n: float(i / imp.sum()) for n, i in zip(model.booster_.feature_name(), imp) if n.startswith("loo")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"fit_{args.variant}.json").write_text(json.dumps({
        "variant": args.variant, "seconds": time.time() - t, "train_ids": sorted(k for k, v in data.items() if v[3] == "train"),
        "spearman": rho, "domain": {k: data[k][2] for k in rho}, "loo_gain_share": share}, indent=1))
    print(f"fit {args.variant}: {time.time() - t:.0f} s; leave-one-out columns' share of split gain: {share}")


def fill_cache(args) -> None:
    from dataclasses import replace

    from predictor import load_lm
    from predictor.feature_cache import FeatureCache
    from predictor.features import SEARCH_GROUPS, FeatureSpec, features_from_observation, observe_for
    from predictor.ranked import record_chain

    cfg = json.loads(Path(args.config).read_text())
    extra = cfg.get("extra-train") or []
    extra = [extra] if isinstance(extra, str) else list(extra)
    files = [cfg["data"], *cfg.get("domain-data", []), *extra]
    spec = FeatureSpec(groups=tuple(cfg["groups"]), per_head=cfg.get("per-head", True))
    spec = replace(spec, groups=tuple(g for g in spec.groups if g in SEARCH_GROUPS))
    if not spec.groups:
        raise SystemExit(f"{args.config}: its groups hold none of {sorted(SEARCH_GROUPS)}")
    lm, cache = load_lm(), FeatureCache()
    records = [(f, json.loads(line)) for f in files for line in open(ROOT / f) if line.strip()]
    in_data = {r["id"] for f, r in records if f not in extra}
    # train.py drops the extra-train chains that are also in --data or --domain-data
    todo = [(f, r) for f, r in records if f not in extra or r["id"] not in in_data][args.part::args.parts]
    reused = computed = 0
    t0 = time.time()
    for k, (f, r) in enumerate(todo):
        chain = record_chain(r)
        if cache.get(lm.fingerprint, spec, chain) is not None:
            continue
        obs = observe_for(lm, chain, spec)
        path = Path(args.gains) / f"{r['id']}.npy"
        same = (f in FILES or f == LONG) and obs.layout.prompt_ids == r["prompt_ids"] \
            and obs.layout.reasoning_ids == r["reasoning_ids"] and obs.layout.answer_ids == r["answer_ids"]
        if same and path.exists():
            obs = replace(obs, loo_gain=np.load(path))
            reused += 1
        else:
            computed += 1
        cache.put(lm.fingerprint, spec, chain, features_from_observation(obs, spec))
        print(f"{k + 1}/{len(todo)} {r['id']} ({reused} gains reused, {computed} computed) {time.time() - t0:.0f} s",
              flush=True)


def cost(args) -> None:
    """LM tokens and seconds of the leave-one-out gains against the exact search's recorded lm_tokens."""
    from predictor import load_lm
    from predictor.greedy.leave_one_out import leave_one_out_gains
    from predictor.layout import Layout

    lm = load_lm()
    recs = [json.loads(line) for line in open(ROOT / args.ranked) if line.strip()]
    recs = [r for r in recs if r.get("lm_tokens")][: args.limit]
    if not recs:
        raise SystemExit(f"{args.ranked}: no record carries the exact search's lm_tokens")
    rows = []
    for r in recs:
        lay = Layout(r["prompt_ids"], r["reasoning_ids"], r["answer_ids"])
        t = time.perf_counter()
        _, tokens = leave_one_out_gains(lm, lay, "joint")
        secs = time.perf_counter() - t
        rows.append((lay.n, tokens, tokens / r["lm_tokens"], secs, float(r.get("seconds") or 0)))
        print(f"{r['id']} n={lay.n}: {tokens} LM tokens = {tokens / r['lm_tokens']:.3f} of the exact search's "
              f"{r['lm_tokens']}; {secs:.1f} s (the labeler's record: {rows[-1][4]:.0f} s)", flush=True)
    share = np.array([x[2] for x in rows])
    print(f"{len(rows)} chains, n {min(x[0] for x in rows)}-{max(x[0] for x in rows)}: share of the exact search's "
          f"LM tokens median {np.median(share):.3f} (range {share.min():.3f}-{share.max():.3f}); seconds median "
          f"{np.median([x[3] for x in rows]):.1f}")


def report(args) -> None:
    from predictor.metrics import bootstrap_ci

    a, b = (json.loads((Path(args.out) / f"fit_{v}.json").read_text()) for v in "AB")
    if a["train_ids"] != b["train_ids"]:
        raise SystemExit("A and B trained on different chains: re-run both fits once phase 1 is done")
    rows = ["| chains | n | A: shipped spec's features | B: + leave-one-out columns | B minus A, paired |",
            "|---|---|---|---|---|"]
    for dom in ("gsm8k", "aqua", "strategyqa", "long"):
        ids = [k for k in a["spearman"] if a["domain"][k] == dom and k in b["spearman"]]
        if not ids:
            continue
        ca, cb = bootstrap_ci([a["spearman"][k] for k in ids]), bootstrap_ci([b["spearman"][k] for k in ids])
        d = bootstrap_ci([b["spearman"][k] - a["spearman"][k] for k in ids])
        label = "long GSM8K, exact (never trained on)" if dom == "long" else f"{dom} validation"
        rows.append(f"| {label} | {len(ids)} | {ca[0]:.3f} [{ca[1]:.3f}, {ca[2]:.3f}] | {cb[0]:.3f} [{cb[1]:.3f}, "
                    f"{cb[2]:.3f}] | {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] |")
    rows.append(f"\n{len(a['train_ids'])} training chains; B's leave-one-out columns' share of split gain: "
                + ", ".join(f"{k} {v:.3f}" for k, v in b["loo_gain_share"].items()))
    text = "\n".join(rows)
    (Path(args.out) / "report.md").write_text(text + "\n")
    print(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=("gains", "fit", "report", "cache", "cost"))
    p.add_argument("--ranked", default=LONG, help="cost: exact ranked records carrying lm_tokens")
    p.add_argument("--limit", type=int, default=10, help="cost: chains to time")
    p.add_argument("--config", help="cache: a train.py config whose groups include loo")
    p.add_argument("--gains", default="runs/loo/gains", help="folder of per-chain leave-one-out gains (.npy)")
    p.add_argument("--out", default="reports/loo", help="folder of the fits' JSON and the report")
    p.add_argument("--variant", choices=("A", "B"), help="fit: A without, B with the leave-one-out columns")
    p.add_argument("--part", type=int, default=0, help="gains: this process's share (0..parts-1)")
    p.add_argument("--parts", type=int, default=1, help="gains: how many processes share the chains")
    p.add_argument("--threads", type=int, default=1, help="torch / LightGBM threads")
    args = p.parse_args(argv)
    if args.phase == "fit" and not args.variant:
        p.error("fit needs --variant A or B")
    if args.phase == "cache" and not args.config:
        p.error("cache needs --config")
    if not 0 <= args.part < args.parts:
        p.error("--part must be in 0..--parts-1")
    import torch

    torch.set_num_threads(args.threads)
    {"gains": gains, "fit": fit, "report": report, "cache": fill_cache, "cost": cost}[args.phase](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
