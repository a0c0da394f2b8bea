"""The training pipeline shared by `train.py` and `predictor train` (reads top to bottom in `run_training`).

1. read ranked chains; 2. load the LM they were labeled with; 3. split by chain (train/val/test);
4. features (cached) for every chain, plus pruned states of the training chains; 5. train each
regressor, early-stopping on validation per-chain Spearman, plus their rank-average ensemble;
6. single-signal baselines (sign chosen on train); 7. select on validation, then evaluate on the
test chains (only for the report); 8. optionally refresh (re-score as tokens go) for the selected
predictor; 9. save the predictor directory and metrics.json, and print the summary table.
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy.stats import rankdata

from .domains import chain_domain, per_domain
from .metrics import bootstrap_ci, per_chain_spearman
from .jsonl_io import atomic_write_text

DEFAULT_DATA = "data/ranked/gsm8k-smollm2-joint.jsonl"
DEFAULT_REGRESSORS = ("lgbm-regression", "lgbm-lambdarank", "mlp", "sequence")
BASELINE_COLUMNS = {"surprisal": "logit.surprisal", "entropy": "logit.entropy", "position": "pos.frac",
                    "attention (answer mean)": "attn.answer_mean.all_mean"}


@dataclass
class TrainConfig:
    data: str = DEFAULT_DATA
    # ranked JSONL of other chain styles, split by the same id-hash rule as `data`; scored per domain
    domain_data: tuple[str, ...] = ()
    # ranked JSONL files used for training only (ids also in `data` / `domain_data` are dropped); a str is one file
    extra_train: tuple[str, ...] | str | None = ()
    extra_states: bool = False  # also give the extra chains the pruned `states` (default: full chains only)
    policy_states: str | None = None  # state records of `predictor label-states` (training parents only)
    out: str = "runs/train"
    model: str | None = None
    device: str | None = None
    objective: str = "joint"
    regressors: tuple[str, ...] = DEFAULT_REGRESSORS
    states: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
    groups: tuple[str, ...] | None = None  # None: features.DEFAULT_GROUPS
    per_head: bool = True
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    limit: int | None = None
    refresh: tuple[int, ...] = ()
    ship: bool = False
    ship_name: str = "smollm2-joint"  # predictor/pretrained/<ship_name> when ship
    cache: str | None = None
    threads: int | None = None
    n_boot: int = 2000
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> extra __init__ params
    progress: bool = True
    ensemble: bool = True  # also try the rank average of the trained regressors


def ci_dict(rho: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Mean per-chain Spearman with its 95% bootstrap interval over chains."""
    mean, lo, hi = bootstrap_ci(rho, n_boot=n_boot, seed=seed)
    return {"mean": mean, "lo": lo, "hi": hi, "n_chains": int(len(rho)), "per_chain": [float(r) for r in rho]}


def column_spearman(X: Sequence[np.ndarray], y: Sequence[np.ndarray]) -> np.ndarray:
    """Mean over chains of the Spearman correlation of every feature column with the target, [F]."""
    total = np.zeros(X[0].shape[1])
    for x, t in zip(X, y):
        rx = rankdata(x, axis=0)
        rx -= rx.mean(0)
        rt = rankdata(t) - (len(t) + 1) / 2
        den = np.sqrt((rx ** 2).sum(0) * (rt ** 2).sum())
        total += np.divide(rx.T @ rt, den, out=np.zeros(x.shape[1]), where=den > 0)
    return total / len(X)


def single_signal_baselines(names: list[str], X_train: Sequence[np.ndarray], y_train: Sequence[np.ndarray]
                            ) -> dict[str, tuple[int, float]]:
    """Baseline name -> (column index, sign chosen on train); includes the best single column on train."""
    rho = column_spearman(X_train, y_train)
    out = {}
    for label, col in BASELINE_COLUMNS.items():
        if col in names:
            j = names.index(col)
            out[label] = (j, 1.0 if rho[j] >= 0 else -1.0)
    j = int(np.argmax(np.abs(rho)))
    out[f"best single: {names[j]}"] = (j, 1.0 if rho[j] >= 0 else -1.0)
    return out


def ci_cell(m: dict[str, Any] | None, with_n: bool = False) -> str:
    """'+0.612 [+0.580, +0.644]' for a ci_dict (with ' n=CHAINS' when with_n), '-' when there is none."""
    if not m:
        return "-"
    text = f"{m['mean']:+.3f} [{m['lo']:+.3f}, {m['hi']:+.3f}]"
    return f"{text} n={m['n_chains']}" if with_n else text


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text summary table: name, kind, val/test Spearman [95% CI], passes, fit seconds."""
    width = max([len("predictor")] + [len(r["name"]) for r in rows])  # names are never cut
    head = (f"{'predictor':{width}s} {'val Spearman [95% CI]':26s} {'test Spearman [95% CI]':26s} "
            f"{'passes':>6s} {'fit s':>7s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        fit = f"{r['fit_seconds']:.1f}" if r.get("fit_seconds") is not None else ""
        lines.append(f"{r['name']:{width}s} {ci_cell(r.get('val')):26s} {ci_cell(r.get('test')):26s} "
                     f"{str(r.get('passes', 1)):>6s} {fit:>7s}")
    return "\n".join(lines)


def format_domain_table(rows: list[dict[str, Any]], domains: Sequence[str]) -> str:
    """Per-domain test table: name, then each domain's mean per-chain Spearman [95% CI] (n chains)."""
    width = max([len("test chains by domain")] + [len(r["name"]) for r in rows])
    head = f"{'test chains by domain':{width}s} " + " ".join(f"{d:36s}" for d in domains)
    lines = [head, "-" * len(head)]
    for r in rows:
        doms = r.get("domains", {})
        lines.append(f"{r['name']:{width}s} " + " ".join(f"{ci_cell(doms.get(d, {}).get('test'), with_n=True):36s}" for d in domains))
    return "\n".join(lines)


def refresh_spearman(lm, regressor, metadata: dict[str, Any], records: Sequence[dict[str, Any]],
                     refresh: int, progress: bool = True) -> np.ndarray:
    """Per-chain Spearman of greedy ranks with ranks predicted with `refresh` forward passes per chain."""
    from tqdm import tqdm

    from .ranked import record_chain
    from .rank_predictor import RankPredictor
    from .scorers.learned import LearnedScorer

    rp = RankPredictor(lm, LearnedScorer(regressor, metadata))
    pred = [rp.predict_ranks(record_chain(r), refresh=refresh)
            for r in tqdm(records, desc=f"refresh={refresh}", unit="chain", disable=not progress, leave=False)]
    return per_chain_spearman(pred, [np.asarray(r["ranks"]) for r in records])


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def extra_train_files(cfg) -> tuple[str, ...]:
    """cfg.extra_train as a tuple of paths (a config may hold one path, None or several)."""
    extra = getattr(cfg, "extra_train", None)
    return () if not extra else (str(extra),) if isinstance(extra, (str, Path)) else tuple(map(str, extra))


def _read_extra_train(cfg: TrainConfig, by_id: dict[str, dict[str, Any]],
                      files: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Records of every --extra-train file, minus any chain of --data / --domain-data (their val/test chains
    must stay unseen); `files`, when given, gets each one's file path by id. An id in two --extra-train files
    is an error."""
    from .ranked import read_ranked
    from .sealed import check_unsealed, record_ids

    out: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for path in extra_train_files(cfg):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such ranked file (--extra-train)")
        extra = [r for r in read_ranked(path, objective=cfg.objective) if str(r["id"]) not in by_id]
        if not extra:
            raise ValueError(f"{path}: no {cfg.objective} chains that are not already in {cfg.data}"
                             + (" or --domain-data" if getattr(cfg, "domain_data", ()) else ""))
        check_unsealed(record_ids(extra), f"{path} (--extra-train)")
        for r in extra:
            cid = str(r["id"])
            if cid in seen:
                raise ValueError(f"{path}: chain {cid!r} is also in {seen[cid]} (--extra-train); a chain may train "
                                 "from one file only")
            seen[cid] = path
            if files is not None:
                files[cid] = path
        out += extra
    return out


def _read_domain_data(cfg, by_id: dict[str, dict[str, Any]],
                      files: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Records of every --domain-data file (appended to by_id; `files`, when given, gets each one's
    file path by id); an id in two files is an error."""
    from .ranked import read_ranked
    from .sealed import check_unsealed, record_ids

    out, origin = [], dict.fromkeys(by_id, f"{cfg.data} (--data)")
    for path in getattr(cfg, "domain_data", ()) or ():
        if Path(path).is_dir() or not Path(path).is_file():
            raise FileNotFoundError(f"{path}: {'a directory, not' if Path(path).is_dir() else 'no such'} "
                                    "ranked file (--domain-data)")
        recs = read_ranked(path, objective=cfg.objective)
        if not recs:
            raise ValueError(f"{path}: no {cfg.objective} chains (--domain-data)")
        check_unsealed(record_ids(recs), f"{path} (--domain-data)")
        for r in recs:
            cid = str(r["id"])
            if cid in by_id:
                raise ValueError(f"{path}: chain {cid!r} is also in {origin[cid]}; a chain may train from one file only")
            by_id[cid], origin[cid] = r, f"{path} (--domain-data)"
            if files is not None:
                files[cid] = str(path)
        out += recs
    return out


class TrainingRecords(NamedTuple):
    """What `read_training_records` read: --data's records, --domain-data's, all of them by id, and
    --extra-train's (never split: they only train)."""
    main: list[dict[str, Any]]
    domain: list[dict[str, Any]]
    by_id: dict[str, dict[str, Any]]
    extra: list[dict[str, Any]]
    # chain id -> "FILE: how it is approximate" (`ranked.approximate_label`) for every record of --data,
    # --domain-data or --extra-train not labeled by the exact search: such chains may only train
    approximate: dict[str, str] = {}

    @property
    def records(self) -> list[dict[str, Any]]:
        """--data's records, then --domain-data's (every record that is split by id)."""
        return self.main + self.domain


def read_training_records(cfg) -> TrainingRecords:
    """The ranked records a training run reads, for cfg.objective.

    cfg: any config with data, objective, limit and extra_train (TrainConfig, FinetuneConfig), and
    optionally domain_data. Raises FileNotFoundError / ValueError naming the file, and
    predictor.sealed.SealedError when a chain of the sealed test set is among them."""
    from .ranked import approximate_label, read_ranked
    from .sealed import check_unsealed, record_ids

    if not Path(cfg.data).is_file():
        raise FileNotFoundError(f"{cfg.data}: no such ranked file (label chains with `predictor label` first)")
    main = read_ranked(cfg.data, objective=cfg.objective)[: cfg.limit]
    if len(main) < 3:
        raise ValueError(f"{cfg.data}: {len(main)} {cfg.objective} chains; need at least 3 to split")
    check_unsealed(record_ids(main), f"{cfg.data} (--data)")
    by_id = {str(r["id"]): r for r in main}
    files = dict.fromkeys(by_id, str(cfg.data))
    domain = _read_domain_data(cfg, by_id, files)
    extra = _read_extra_train(cfg, by_id, files)
    approximate = {}
    for r in main + domain + extra:
        how = approximate_label(r)
        if how:
            approximate[str(r["id"])] = f"{files[str(r['id'])]}: {how}"
    return TrainingRecords(main, domain, by_id, extra, approximate)


def check_approximate_held_out(approximate: dict[str, str], split: dict[str, list[str]]) -> None:
    """Raise ValueError when a chain with approximate labels falls in the validation or test split:
    selection and test scores must compare against the exact order."""
    for part in ("val", "test"):
        bad = [c for c in split[part] if c in approximate]
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise ValueError(f"{approximate[bad[0]]} labels of chain {bad[0]!r}{more} would be "
                             f"held out in the {part} split, where predictors are scored against the exact "
                             "greedy order; give only chains of the train split (data/split_queue.py --split "
                             "train) or pass them with --extra-train")


def _read_policy_states(cfg: TrainConfig, train_ids: set[str]) -> list[dict[str, Any]]:
    """State records of --policy-states whose parent is a training chain (others are dropped: the
    states of validation and test chains must never train)."""
    from .ranked import read_ranked

    if not cfg.policy_states:
        return []
    if not Path(cfg.policy_states).is_file():
        raise FileNotFoundError(f"{cfg.policy_states}: no such state file (--policy-states)")
    states = [s for s in read_ranked(cfg.policy_states, objective=cfg.objective)
              if str(s.get("parent_id")) in train_ids]
    _log(f"{len(states)} policy states of training chains from {cfg.policy_states}")
    return states


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    """Train, select on validation, evaluate on test, save; returns the metrics dict (also metrics.json)."""
    from .feature_cache import FeatureCache
    from .features import DEFAULT_GROUPS, FeatureSpec
    from .predictor_dir import pretrained_dir, save_predictor
    from .regressors import make_regressor
    from .runtime import load_lm_on
    from .splits import split_ids
    from .training_data import build_training_data, check_records_match_lm, file_sha256

    out = Path(cfg.out)

    # 1. ranked chains
    read = read_training_records(cfg)
    records, by_id, extra = read.records, read.by_id, read.extra

    # 2. the LM the chains were labeled with
    lm = load_lm_on(cfg.model, cfg.device, cfg.threads)
    check_records_match_lm(records + extra, lm)

    # 3. split by chain; extra chains only ever train
    split = split_ids(list(by_id), cfg.fractions, seed=cfg.seed)
    check_approximate_held_out(read.approximate, split)
    train_ids = split["train"] + [str(r["id"]) for r in extra]
    _log(f"{len(records)} chains: {len(split['train'])} train / {len(split['val'])} val / {len(split['test'])} test"
         + (f"; +{len(extra)} extra training chains from {', '.join(extra_train_files(cfg))}" if extra else "")
         + (f"; {len(read.approximate)} training chains with approximate labels" if read.approximate else ""))

    # 4. features: full chains for all, pruned states for training chains
    spec = FeatureSpec(groups=tuple(cfg.groups or DEFAULT_GROUPS), per_head=cfg.per_head)
    policy = _read_policy_states(cfg, set(train_ids))
    # extra chains add their full state only (one forward pass each) unless extra_states
    data = build_training_data(records + extra, lm, spec, cfg.states,
                               state_ids=train_ids if cfg.extra_states else split["train"],
                               cache=FeatureCache(cfg.cache), progress=cfg.progress, policy_states=policy)
    X_tr, y_tr = data.select(train_ids, fractions=None)  # all states
    X_va, y_va = data.select(split["val"])                    # full chains only
    X_te, y_te = data.select(split["test"])
    held_ids = {"val": data.select_ids(split["val"]), "test": data.select_ids(split["test"])}
    domains = sorted({chain_domain(by_id[c]) for c in held_ids["val"] + held_ids["test"]})

    def score(row: dict[str, Any], part: str, rho: np.ndarray) -> None:
        """row[part] = all held-out chains of that split; with several domains also row["domains"][d][part]."""
        row[part] = ci_dict(rho, cfg.n_boot, cfg.seed)
        if len(domains) > 1:
            for d, m in per_domain(rho, held_ids[part], lambda r: ci_dict(r, cfg.n_boot, cfg.seed),
                                   lambda c: chain_domain(by_id[c])).items():
                row.setdefault("domains", {}).setdefault(d, {})[part] = m
    _log(f"{len(data.feature_names)} features; {len(X_tr)} training examples (chains x states)")

    base_meta = {
        "lm_fingerprint": lm.fingerprint, "lm_name": lm.name, "feature_spec": spec.to_dict(),
        "feature_names": data.feature_names, "objective": cfg.objective,
        "train_data": str(cfg.data), "train_data_sha256": file_sha256(cfg.data),
        "n_train_chains": len(train_ids), "split": split, "states": list(cfg.states), "seed": cfg.seed,
        "lm_agnostic": spec.lm_agnostic,
    }
    if cfg.domain_data:
        base_meta["domain_data"] = [{"path": str(p), "sha256": file_sha256(p)} for p in cfg.domain_data]
    if read.approximate:
        kinds: dict[str, int] = {}
        for v in read.approximate.values():
            kinds[v] = kinds.get(v, 0) + 1
        base_meta["approximate_train_chains"] = kinds  # "FILE: budget 0.1 (lazy)" -> chains
    if extra:
        paths = extra_train_files(cfg)
        if len(paths) == 1:  # one file: the fields predictors have always stored
            base_meta.update(extra_train_data=paths[0], extra_train_data_sha256=file_sha256(paths[0]))
        else:
            base_meta["extra_train_data"] = [{"path": p, "sha256": file_sha256(p)} for p in paths]
        base_meta["extra_train_ids"] = [str(r["id"]) for r in extra]

    # 5. regressors
    rows, models = [], {}
    for kind in cfg.regressors:
        params = {"seed": cfg.seed, "progress": cfg.progress, **cfg.params.get(kind, {})}
        if kind.startswith("lgbm") and cfg.threads:
            params.setdefault("n_jobs", cfg.threads)
        reg = make_regressor(kind, **params)
        _log(f"training {kind} ...")
        t0 = time.perf_counter()
        reg.fit(X_tr, y_tr, X_va, y_va, feature_names=data.feature_names)
        fit_s = time.perf_counter() - t0
        row = {"name": kind, "kind": kind, "fit_seconds": fit_s, "passes": 1, "params": reg.get_params()}
        score(row, "val", per_chain_spearman(reg.predict(X_va), y_va))
        _log(f"  {kind}: val Spearman {row['val']['mean']:+.3f} ({fit_s:.1f} s)")
        models[kind] = reg
        rows.append(row)

    # 5b. the rank average of every trained regressor, a candidate like the others
    if cfg.ensemble and len(models) >= 2 and "ensemble" not in models:
        from .regressors.ensemble import EnsembleRegressor

        ens = EnsembleRegressor.from_fitted(list(models.values()), seed=cfg.seed)
        row = {"name": f"ensemble ({' + '.join(models)})", "kind": "ensemble", "passes": 1,
               "fit_seconds": sum(r["fit_seconds"] for r in rows), "params": ens.get_params()}
        score(row, "val", per_chain_spearman(ens.predict(X_va), y_va))
        _log(f"  ensemble: val Spearman {row['val']['mean']:+.3f}")
        models["ensemble"] = ens
        rows.append(row)

    # 6. single-signal baselines (sign chosen on the training chains' full states)
    X_tr0, y_tr0 = data.select(train_ids)
    for label, (j, sign) in single_signal_baselines(data.feature_names, X_tr0, y_tr0).items():
        row = {"name": f"baseline: {label}", "kind": "baseline", "column": data.feature_names[j], "sign": sign,
               "passes": 1}
        for part, X, y in (("val", X_va, y_va), ("test", X_te, y_te)):
            score(row, part, per_chain_spearman([sign * x[:, j] for x in X], y))
        rows.append(row)

    # 7. select on validation, then (only now) look at the test chains
    best = max((r for r in rows if r["kind"] != "baseline"), key=lambda r: r["val"]["mean"])
    for r in rows:
        if r["kind"] != "baseline":
            score(r, "test", per_chain_spearman(models[r["kind"]].predict(X_te), y_te))
    _log(f"selected {best['kind']} (best validation Spearman)")
    best_reg = models[best["kind"]]

    def row_metrics(r: dict[str, Any]) -> dict[str, Any]:
        return {"val": r["val"], "test": r["test"], **({"domains": r["domains"]} if "domains" in r else {})}

    meta = {**base_meta, "regressor_params": best_reg.get_params(), "metrics": row_metrics(best)}

    # 8. refresh: re-score the survivors `k` times per chain (k forward passes)
    for k in cfg.refresh:
        row = {"name": f"{best['kind']} + refresh", "kind": "refresh", "passes": k}
        for part in ("val", "test"):
            recs = [by_id[c] for c in held_ids[part]]
            score(row, part, refresh_spearman(lm, best_reg, meta, recs, k, cfg.progress))
        meta["metrics"][f"refresh{k}"] = {"val": row["val"], "test": row["test"]}
        rows.append(row)

    # 9. save: every trained model, the selected predictor, metrics and the table
    for kind, reg in models.items():
        r = next(x for x in rows if x["kind"] == kind)
        save_predictor(out / "models" / kind, reg, {**base_meta, "metrics": row_metrics(r)})
    save_predictor(out / "predictor", best_reg, meta)
    if cfg.ship:
        save_predictor(pretrained_dir(cfg.ship_name), best_reg, meta)
        _log(f"shipped the predictor to {pretrained_dir(cfg.ship_name)}")
    table = format_table(rows)
    if len(domains) > 1:
        table += "\n\n" + format_domain_table(rows, domains)
    result = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
              "selected": best["kind"], "n_features": len(data.feature_names), "split": split, "rows": rows,
              "table": table}
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=1))
    atomic_write_text(out / "summary.txt", table + "\n")
    print(table)
    print(f"\nselected: {best['kind']} (validation); predictor saved to {out / 'predictor'}; metrics in "
          f"{out / 'metrics.json'}")
    return result
