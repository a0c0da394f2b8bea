"""Does training on other chain styles help there? Cross-fitted per-domain scores with few labels.

With a few dozen labeled chains per new domain, a 15% test split holds a handful of chains. Instead,
every domain chain gets an out-of-fold prediction: its domain's chains are cut into K folds by a
seeded hash of their ids; fold k's chains are predicted by a model trained on the main file's training
chains (+ its --extra-train chains) plus every *other* fold of every domain (all pruned states, as
`train` does), early-stopped on the main file's validation chains. The reference is the same recipe
trained on the main file alone. Both predict the same domain chains, so each domain gets a paired
difference over all of its labeled chains (mean per-chain Spearman with greedy, 95% bootstrap CI).

    python benchmarks/domain_crossfit.py --config configs/smollm2-joint.json \\
        --domain-data data/ranked/aqua/aqua-smollm2-joint.jsonl,data/ranked/strategyqa/strategyqa-smollm2-joint.jsonl \\
        --regressor lgbm-regression --folds 3 --json reports/domains/crossfit.json

`--scheme leave-domain-out` asks the other question, how the predictor does on a chain style it never
saw: each domain's chains are all predicted by a model trained on the main file plus every *other*
domain's chains (that domain left out entirely), paired with the main-file-only reference; `both` runs
the folds and the leave-domain-out fits (1 + K + D fits), and adds the paired difference of the two,
what the domain's own labels add over the other styles':

    python benchmarks/domain_crossfit.py --config configs/smollm2-joint.json --states 0 \\
        --domain-data data/ranked/math/math-smollm2-joint.jsonl --scheme both --json reports/domains/lodo/lodo.json

The main file's test chains are never read. Of `train`'s options, --out, --regressors, --no-ensemble,
--refresh, --ship, --ship-name, --policy-states and --extra-states do not apply here (a warning names
those given); --regressor picks the one kind fitted and --json is the only output. Features come from the training feature cache (the same
spec as the config's `groups`), so a run after `train` costs the domain chains' passes and K + 1 fits.
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


def fold_of(chain_id: str, folds: int, seed: int) -> int:
    """The chain's fold in 0..folds-1 (seeded hash of its id; independent of the train/val/test split)."""
    from predictor.splits import hash_unit

    return min(int(hash_unit(seed + 1000, chain_id) * folds), folds - 1)


SCHEMES = ("folds", "leave-domain-out", "both")


def leave_domain_out(ids: list[str], domain_of) -> dict[str, tuple[list[str], list[str]]]:
    """{domain: (training ids = every other domain's chains, held-out ids = that domain's chains)}."""
    doms = {c: domain_of(c) for c in ids}
    return {d: ([c for c in ids if doms[c] != d], [c for c in ids if doms[c] == d])
            for d in dict.fromkeys(doms.values())}


def main(argv: list[str] | None = None) -> int:
    from predictor.commands.train import add_arguments, config_from_args

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)  # the training options (--config, --data, --extra-train, --groups, --states, ...)
    ap.add_argument("--regressor", default="lgbm-regression", help="the one regressor kind to fit (default: %(default)s)")
    ap.add_argument("--folds", type=int, default=3, help="folds per domain (default: %(default)s)")
    ap.add_argument("--scheme", choices=SCHEMES, default="folds",
                    help="folds: each domain chain predicted out of fold (its domain's other folds in training); "
                         "leave-domain-out: predicted by a model that never saw its domain; both (default: %(default)s)")
    ap.add_argument("--json", dest="json_out", default=None, help="write per-chain values and the table here")
    defaults = vars(ap.parse_args([]))
    args = ap.parse_args(argv)
    if args.folds < 2:
        ap.error("--folds must be at least 2")
    if args.json_out and Path(args.json_out).is_dir():
        ap.error(f"--json {args.json_out}: is a directory; give a JSON file path")
    ignored = [f"--{k.replace('_', '-')}" for k in ("no_ensemble", "refresh", "ship", "ship_name", "policy_states",
                                                     "extra_states") if getattr(args, k) != defaults[k]]
    if ignored:
        print(f"{ap.prog}: warning: {', '.join(ignored)} do not apply to the cross-fit and are ignored", file=sys.stderr)
    from predictor.regressors import REGRESSOR_KINDS

    if args.regressor not in REGRESSOR_KINDS:
        ap.error(f"--regressor {args.regressor!r}: choose from {', '.join(REGRESSOR_KINDS)}")
    args.regressors = [args.regressor]  # the one kind fitted here (its --regressor-param are checked)
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        ap.error(str(e))
    if not cfg.domain_data:
        ap.error("--domain-data is required: the chains to cross-fit")
    try:
        return crossfit(args, cfg)
    except (ValueError, FileNotFoundError) as e:  # bad files, sealed chains, a mismatched LM: no traceback
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2


def crossfit(args: argparse.Namespace, cfg) -> int:

    from predictor.domains import chain_domain
    from predictor.evaluation.ablation import paired_difference
    from predictor.feature_cache import FeatureCache
    from predictor.features import DEFAULT_GROUPS, FeatureSpec
    from predictor.metrics import bootstrap_ci, per_chain_spearman
    from predictor.regressors import make_regressor
    from predictor.runtime import load_lm_on
    from predictor.splits import split_ids
    from predictor.training import read_training_records
    from predictor.training_data import build_training_data, check_records_match_lm

    read = read_training_records(cfg)
    main_recs, domain_recs, by_id, extra = read.main, read.domain, read.by_id, read.extra
    approx_dom = [c for c in map(str, (r["id"] for r in read.domain)) if c in read.approximate]
    if approx_dom:  # every domain chain is held out in one fold and scored there against its labels
        raise SystemExit(f"{read.approximate[approx_dom[0]]}: the cross-fit scores every --domain-data chain; "
                         "approximate labels are no reference (pass them with --extra-train)")
    main_ids = [str(r["id"]) for r in main_recs]
    split = split_ids(main_ids, cfg.fractions, seed=cfg.seed)  # the main file's split, as `train` makes it
    extra_ids = [str(r["id"]) for r in extra]
    dom_ids = [str(r["id"]) for r in domain_recs]
    fold = {c: fold_of(c, args.folds, cfg.seed) for c in dom_ids}
    print(f"{len(main_ids)} main chains ({len(split['train'])} train / {len(split['val'])} val; test unread), "
          f"{len(extra_ids)} extra, {len(dom_ids)} domain chains in {args.folds} folds", file=sys.stderr)

    lm = load_lm_on(cfg.model, cfg.device, cfg.threads)
    used = [r for r in main_recs if str(r["id"]) in set(split["train"]) | set(split["val"])] + domain_recs + extra
    check_records_match_lm(used, lm)
    spec = FeatureSpec(groups=tuple(cfg.groups or DEFAULT_GROUPS), per_head=cfg.per_head)
    data = build_training_data(used, lm, spec, cfg.states, state_ids=split["train"] + dom_ids,
                               cache=FeatureCache(cfg.cache), progress=cfg.progress)
    X_va, y_va = data.select(split["val"])
    X_dom, y_dom = data.select(dom_ids)
    order = data.select_ids(dom_ids)

    def fit(train_ids: list[str]):
        X, y = data.select(train_ids, fractions=None)
        params = {"seed": cfg.seed, "progress": False, **cfg.params.get(args.regressor, {})}
        if args.regressor.startswith("lgbm") and cfg.threads:
            params.setdefault("n_jobs", cfg.threads)
        t0 = time.perf_counter()
        reg = make_regressor(args.regressor, **params).fit(X, y, X_va, y_va, feature_names=data.feature_names)
        print(f"  fit on {len(X)} examples in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        return reg

    base_train = split["train"] + extra_ids
    print("reference: the main file only", file=sys.stderr)
    ref = per_chain_spearman(fit(base_train).predict(X_dom), y_dom)
    nan = np.full(len(order), np.nan)
    cross, unseen = nan.copy(), nan.copy()
    if args.scheme in ("folds", "both"):
        for k in range(args.folds):
            print(f"fold {k}: + the other folds' domain chains", file=sys.stderr)
            reg = fit(base_train + [c for c in dom_ids if fold[c] != k])
            pos = [i for i, c in enumerate(order) if fold[c] == k]
            cross[pos] = per_chain_spearman(reg.predict([X_dom[i] for i in pos]), [y_dom[i] for i in pos])
    if args.scheme in ("leave-domain-out", "both"):
        domain_of = lambda c: chain_domain(by_id[c])  # noqa: E731
        for dom, (others, held) in leave_domain_out(dom_ids, domain_of).items():
            print(f"{dom} left out: + the other domains' {len(others)} chains", file=sys.stderr)
            reg = fit(base_train + others)
            held = set(held)
            pos = [i for i, c in enumerate(order) if c in held]
            unseen[pos] = per_chain_spearman(reg.predict([X_dom[i] for i in pos]), [y_dom[i] for i in pos])

    result = {"config": {"data": cfg.data, "domain_data": list(cfg.domain_data), "regressor": args.regressor,
                         "folds": args.folds, "scheme": args.scheme, "groups": list(spec.groups),
                         "states": list(cfg.states), "extra_train": cfg.extra_train, "seed": cfg.seed},
              "ids": order, "main_only": ref.tolist(), "with_domains": cross.tolist(),
              "other_domains_only": unseen.tolist(), "domains": {}}
    columns = [("main file only", None)]
    if args.scheme != "leave-domain-out":
        columns.append(("+ other domains' chains (out of fold)", cross))
    if args.scheme != "folds":
        columns.append(("+ the other domains only (this one unseen)", unseen))
    head = " | ".join(name for name, _ in columns)
    diffs = [(f"{columns[j][0].split(' (')[0]} minus main only", columns[j][1], ref) for j in range(1, len(columns))]
    if args.scheme == "both":
        diffs.append(("out of fold minus unseen", cross, unseen))
    lines = [f"| domain | chains | {head} | " + " | ".join(d[0] for d in diffs) + " |",
             "|---|---|" + "---|" * (len(columns) + len(diffs))]
    fmt = lambda t: f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"  # noqa: E731
    for dom in sorted({chain_domain(by_id[c]) for c in order}):
        pos = [i for i, c in enumerate(order) if chain_domain(by_id[c]) == dom]
        cells = [fmt(bootstrap_ci(ref[pos]))] + [fmt(bootstrap_ci(v[pos])) for _, v in columns[1:]]
        entry = {"n": len(pos), "main_only": bootstrap_ci(ref[pos])}
        if args.scheme != "leave-domain-out":
            entry["with_domains"] = bootstrap_ci(cross[pos])
            entry["difference"] = paired_difference(cross[pos], ref[pos])
        if args.scheme != "folds":
            entry["other_domains_only"] = bootstrap_ci(unseen[pos])
            entry["unseen_difference"] = paired_difference(unseen[pos], ref[pos])
        if args.scheme == "both":
            entry["own_labels_difference"] = paired_difference(cross[pos], unseen[pos])
        dcells = []
        for _, a, b in diffs:
            d = paired_difference(a[pos], b[pos])
            dcells.append(f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]")
        result["domains"][dom] = entry
        lines.append(f"| {dom} | {len(pos)} | " + " | ".join(cells + dcells) + " |")
    table = "\n".join(lines)
    result["table"] = table
    print(table)
    if args.json_out:
        from predictor.jsonl_io import atomic_write_text

        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json_out, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
