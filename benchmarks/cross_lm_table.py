"""Cross-LM table: each LM's own predictor, LM-agnostic predictors transferred both ways, and baselines,
as mean per-chain Spearman [95% bootstrap CI] on each LM's test split, with paired differences.

    python benchmarks/cross_lm_table.py --threads 1 --out runs/cross-lm \\
        [--smol-data data/ranked/gsm8k-smollm2-joint.jsonl] \\
        [--gemma-data data/ranked/gemma3-270m/gsm8k-gemma3-joint.jsonl]

LM "smol" (default: the embedded SmolLM2) brings its own predictor (default: the shipped
predictor/pretrained/smollm2-joint); its test split is that predictor's stored test split. LM "gemma"
(default: gemma3-270m) gets its predictors trained here with `predictor.training.run_training` on its
file's split (`predictor.splits`, the package's fractions and seed):
  - gemma-agnostic: the LM-agnostic groups (UNIVERSAL recipe, the one of the shipped `universal`)
  - gemma-full: Gemma's full per-head features (FULL recipe, the one of the shipped SmolLM2 predictor)
  and "Gemma's own predictor" is the one of the two with the better validation Spearman.
  smol-agnostic: the UNIVERSAL recipe on smol's file (its test chains never train);
  smol-matched: the same with only the first n of its training chains, n = gemma's number of training
  chains (same val and test chains; a size-matched reference for the gemma -> smol transfer: how much
  of its gap is the smaller training set). Its data file is OUT/smol-matched.jsonl, a subset of smol's.
Transfer: smol-agnostic on gemma's test split (and on every gemma chain: it saw no gemma label), and
gemma-agnostic on smol's test split. Baselines on each: surprisal and position (sign fitted on that
LM's training split), random scores (seeded).

Writes OUT/table.md and OUT/table.json (per-chain values included) and prints the markdown. Training
runs live in OUT/<run>/ and are reused when their config and data file are unchanged; features come
from the feature cache, so a rerun costs only what changed. Progress and ETA on stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from predictor.metrics import per_chain_spearman  # noqa: E402
from predictor.training import TrainConfig  # noqa: E402

AGNOSTIC = ("pooled_attention", "logits", "position", "lexical")
FULL = ("attention", "probe", "logits", "position", "lexical", "hidden")
UNIVERSAL = dict(groups=AGNOSTIC, states=(0.0,), regressors=("lgbm-regression",), ensemble=False)
FULL_RECIPE = dict(groups=FULL, states=(0.0, 0.25, 0.5, 0.75), regressors=("lgbm-regression", "sequence"),
                   ensemble=True)
SMALL = 10  # fewer chains than this: the markdown warns that the intervals are not reliable


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt_s(s: float) -> str:
    return f"{int(s) // 60}m{int(s) % 60:02d}s"


@dataclass
class Side:
    """One LM: its display name, model (name or dir for load_lm), ranked records and test chain ids."""

    name: str
    model: str | None
    data: str
    records: dict[str, dict[str, Any]]
    test_ids: list[str]
    train_ids: list[str]

    def ranks(self, ids: list[str]) -> list[np.ndarray]:
        return [np.asarray(self.records[i]["ranks"], dtype=np.float64) for i in ids]


class Features:
    """Feature matrices of ranked chains (full state) from the feature cache; the LM is loaded only on a miss."""

    def __init__(self, cache_root: str | None):
        from predictor.feature_cache import FeatureCache

        self.cache = FeatureCache(cache_root)
        self._lms: dict[str | None, Any] = {}

    def _lm(self, model: str | None):
        if model not in self._lms:
            from predictor.lm import load_lm

            self._lms[model] = load_lm(model, device="cpu")
        return self._lms[model]

    def of(self, side: Side, ids: list[str], spec) -> tuple[list[np.ndarray], list[str]]:
        """([n_i, F] float32 per chain, column names) of these chains under `spec`."""
        from predictor.ranked import record_chain

        recs = [side.records[i] for i in ids]
        chains = [record_chain(r) for r in recs]
        tables = [self.cache.get(r["lm"], spec, c) for r, c in zip(recs, chains)]
        if any(t is None for t in tables):
            lm = self._lm(side.model)
            from predictor.training_data import check_records_match_lm

            check_records_match_lm(recs, lm)
            tables = self.cache.features_for_many(lm, chains, spec)
        names = list(tables[0].names)
        for r, t in zip(recs, tables):
            if t.n != len(r["ranks"]):
                raise ValueError(f"{side.data}: chain {r['id']!r}: {t.n} feature rows for {len(r['ranks'])} ranks")
        return [np.asarray(t.values, np.float32) for t in tables], names


def train_or_reuse(cfg: TrainConfig) -> Path:
    """run_training(cfg) unless cfg.out holds a run of the same config on the same data file; returns the
    selected predictor's directory. run_training's table goes to stderr (stdout carries our table)."""
    from predictor.predictor_dir import read_metadata
    from predictor.training import run_training
    from predictor.training_data import file_sha256

    out = Path(cfg.out)
    def settings(c: dict[str, Any]) -> dict[str, Any]:  # what changes the result (not progress bars)
        return {k: v for k, v in c.items() if k != "progress"}

    want = settings(json.loads(json.dumps(asdict(cfg))))  # tuples -> lists, as stored in metrics.json
    try:
        done = settings(json.loads((out / "metrics.json").read_text())["config"]) == want and \
            read_metadata(out / "predictor")["train_data_sha256"] == file_sha256(cfg.data)
    except (OSError, ValueError, KeyError):
        done = False
    if done:
        _log(f"  reusing {out} (same config and data)")
    else:
        with contextlib.redirect_stdout(sys.stderr):
            run_training(cfg)
    return out / "predictor"


def pending_passes(cfg: TrainConfig, records: dict[str, dict[str, Any]], cache) -> set[Path]:
    """Forward passes run_training(cfg) will need: the cache paths of its (chain, state) tables not there yet."""
    from predictor.features import FeatureSpec
    from predictor.ranked import record_chain
    from predictor.splits import split_ids
    from predictor.training_data import state_targets

    spec = FeatureSpec(groups=tuple(cfg.groups), per_head=cfg.per_head)
    train = set(split_ids(list(records), cfg.fractions, seed=cfg.seed)["train"])
    missing = set()
    for cid, r in records.items():
        for f in sorted({0.0, *cfg.states}):
            st = state_targets(r["order"], f) if f == 0 or cid in train else None
            if st is not None:
                kept = None if len(st[0]) == len(r["order"]) else st[0]
                path = cache.path(r["lm"], spec, record_chain(r), kept)
                if not path.is_file():
                    missing.add(path)
    return missing


def ci(rho: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    from predictor.training import ci_dict

    return ci_dict(np.asarray(rho, dtype=np.float64), n_boot, seed)


def load_side(name: str, model: str | None, data: str, test_ids: list[str] | None) -> Side:
    """The LM's JOINT records of `data`; test_ids (if given) must all be among them."""
    from predictor.ranked import read_ranked

    recs = {str(r["id"]): r for r in read_ranked(data, objective="joint")}
    if test_ids is not None:
        missing = [i for i in test_ids if i not in recs]
        if missing:
            raise ValueError(f"{data}: lacks {len(missing)} test chains of the given predictor's split, e.g. "
                             f"{missing[0]!r}; pass the ranked file it was trained on")
    return Side(name, model, data, recs, list(test_ids or []), [])


def run_configs(args: argparse.Namespace) -> dict[str, TrainConfig]:
    """The training runs (out dirs under args.out); smol-matched reads OUT/smol-matched.jsonl."""
    base = TrainConfig(threads=args.threads, cache=args.cache, n_boot=args.n_boot, seed=args.seed,
                       progress=not args.no_progress)
    if args.max_epochs is not None:
        base = replace(base, params={k: {"max_epochs": args.max_epochs} for k in ("sequence", "mlp")})
    full = {**FULL_RECIPE, "regressors": tuple(args.full_regressors.split(","))}
    out = Path(args.out)
    return {
        "smol-agnostic": replace(base, data=args.smol_data, model=args.smol_model, out=str(out / "smol-agnostic"),
                                 **UNIVERSAL),
        "smol-matched": replace(base, data=str(out / "smol-matched.jsonl"), model=args.smol_model,
                                out=str(out / "smol-matched"), **UNIVERSAL),
        "gemma-agnostic": replace(base, data=args.gemma_data, model=args.gemma_model, out=str(out / "gemma-agnostic"),
                                  **UNIVERSAL),
        "gemma-full": replace(base, data=args.gemma_data, model=args.gemma_model, out=str(out / "gemma-full"), **full),
    }


def write_matched_subset(src: str, dst: Path, n_train: int, fractions, seed: int) -> None:
    """dst: the lines of ranked file `src` minus all but the first n_train chains of its training split.

    Splits are by chain id (predictor.splits), so dst splits into those n_train training chains and
    src's own validation and test chains."""
    from predictor.jsonl_io import atomic_write_text
    from predictor.splits import split_ids

    lines = [ln for ln in Path(src).read_text().splitlines() if ln.strip()]
    ids = [str(json.loads(ln)["id"]) for ln in lines]
    split = split_ids(ids, fractions, seed=seed)
    drop = set(split["train"][n_train:])
    atomic_write_text(dst, "".join(ln + "\n" for ln, i in zip(lines, ids) if i not in drop))


def build_table(args: argparse.Namespace) -> dict[str, Any]:
    """Train (or reuse) the runs, evaluate every (predictor, LM) pair, return the result dict."""
    from predictor.feature_cache import FeatureCache
    from predictor.features import FeatureSpec
    from predictor.predictor_dir import load_predictor, read_metadata
    from predictor.splits import split_ids
    from predictor.training import single_signal_baselines

    t0 = time.perf_counter()
    names = args.names.split(",")
    own_meta = read_metadata(args.smol_predictor)
    smol = load_side(names[0], args.smol_model, args.smol_data, own_meta["split"]["test"])
    gemma = load_side(names[1], args.gemma_model, args.gemma_data, None)
    runs = run_configs(args)
    fr = runs["gemma-agnostic"].fractions
    write_matched_subset(smol.data, Path(runs["smol-matched"].data),
                         len(split_ids(list(gemma.records), fr, seed=args.seed)["train"]), fr, args.seed)
    # ETA: feature passes missing from the cache, at the seconds per pass of the runs so far (fits included)
    cache = FeatureCache(args.cache)
    pred_dirs, done, spent = {}, 0, 0.0
    for i, (key, cfg) in enumerate(runs.items(), 1):
        todo = [pending_passes(c, (smol if k.startswith("smol") else gemma).records, cache)
                for k, c in list(runs.items())[i - 1:]]  # at each start: earlier runs may have filled some
        left = len(set().union(*todo))
        el = time.perf_counter() - t0
        eta = f", ETA {_fmt_s(spent / done * left)} at the rate so far" if done else ""
        _log(f"[{i}/{len(runs) + 1}] {key}: train on {cfg.data}; {len(todo[0])} feature passes to compute, "
             f"{left} in all ({_fmt_s(el)} elapsed{eta})")
        t1 = time.perf_counter()
        pred_dirs[key] = train_or_reuse(cfg)
        if todo[0]:
            done, spent = done + len(todo[0]), spent + time.perf_counter() - t1
    _log(f"[{len(runs) + 1}/{len(runs) + 1}] evaluating ({_fmt_s(time.perf_counter() - t0)} elapsed)")

    preds = {k: load_predictor(d) for k, d in pred_dirs.items()}
    preds["smol-own"] = load_predictor(args.smol_predictor)
    split_g = preds["gemma-agnostic"][1]["split"]
    if preds["gemma-full"][1]["split"] != split_g:
        raise RuntimeError("the two Gemma runs split the chains differently")
    gemma.test_ids, gemma.train_ids = split_g["test"], split_g["train"]
    smol.train_ids = preds["smol-agnostic"][1]["split"]["train"]
    for k in ("smol-agnostic", "smol-matched"):
        leak = set(preds[k][1]["split"]["train"]) & set(smol.test_ids)
        if leak:
            raise RuntimeError(f"{len(leak)} test chains of {args.smol_predictor} are in the training split of {k}")
    val = {k: preds[k][1]["metrics"]["val"]["mean"] for k in ("gemma-agnostic", "gemma-full")}
    own_gemma = max(val, key=val.get)
    _log(f"{gemma.name}'s own predictor: {own_gemma} (validation {val[own_gemma]:+.3f} vs "
         f"{min(val.values()):+.3f})")

    feats = Features(args.cache)

    def rho_of(key: str, side: Side, ids: list[str]) -> np.ndarray:
        reg, meta = preds[key]
        X, cols = feats.of(side, ids, FeatureSpec.from_dict(meta["feature_spec"]))
        if cols != meta["feature_names"]:
            raise ValueError(f"{key}: its feature columns differ from {side.name}'s; not transferable")
        return per_chain_spearman(reg.predict(X), side.ranks(ids))

    def baselines(side: Side, ids: list[str], sign_from: Side) -> dict[str, np.ndarray]:
        spec = FeatureSpec(groups=AGNOSTIC)
        Xtr, cols = feats.of(sign_from, sign_from.train_ids, spec)
        signs = single_signal_baselines(cols, Xtr, sign_from.ranks(sign_from.train_ids))
        X, _ = feats.of(side, ids, spec)
        y = side.ranks(ids)
        rng = np.random.default_rng(args.seed)
        out_b = {f"baseline: {b} (sign from {sign_from.name} train)": per_chain_spearman(
            [signs[b][1] * x[:, signs[b][0]] for x in X], y) for b in ("surprisal", "position")}
        out_b["baseline: random"] = per_chain_spearman([rng.random(len(t)) for t in y], y)
        return out_b

    def describe(key: str) -> str:
        meta = preds[key][1]
        return (f"{meta['regressor']} on {','.join(meta['feature_spec']['groups'])}, "
                f"{meta['n_train_chains']} train chains")

    label = {"smol-own": f"{smol.name} predictor", "smol-agnostic": f"{smol.name} LM-agnostic",
             "smol-matched": f"{smol.name} LM-agnostic, size-matched",
             "gemma-full": f"{gemma.name} full-feature", "gemma-agnostic": f"{gemma.name} LM-agnostic"}
    tables = []
    # per LM: the predictors, then the references of the paired-difference columns (key, column title)
    for side, keys, refs in (
            (smol, ["smol-own", "smol-agnostic", "smol-matched", "gemma-agnostic"],
             [("smol-own", "own"), ("smol-agnostic", "own LM-agnostic"), ("smol-matched", "size-matched")]),
            (gemma, [own_gemma, "gemma-agnostic" if own_gemma == "gemma-full" else "gemma-full", "smol-agnostic"],
             [(own_gemma, "own"), ("gemma-agnostic", "own LM-agnostic")])):
        own = refs[0][0]
        home = "smol" if side is smol else "gemma"
        per = {}
        for k in keys:
            tag = " (own)" if k == own else "" if k.startswith(home) else " (transfer: no labels of this LM)"
            per[label[k] + tag] = (k, rho_of(k, side, side.test_ids))
        for b, r in baselines(side, side.test_ids, side).items():
            per[b] = (None, r)
        ref = {key: next(r for k, r in per.values() if k == key) for key, _ in refs}
        rows = [{"row": name, "predictor": k, "trained": describe(k) if k else None,
                 "spearman": ci(r, args.n_boot, args.seed),
                 "minus": {key: None if k == key else ci(r - ref[key], args.n_boot, args.seed) for key, _ in refs}}
                for name, (k, r) in per.items()]
        tables.append({"lm": side.name, "data": side.data, "n_chains_in_file": len(side.records),
                       "split": "test", "test_ids": side.test_ids, "own": own,
                       "references": [{"predictor": key, "title": title} for key, title in refs], "rows": rows})

    # zero-label transfer to every gemma chain: smol-agnostic saw none of them
    all_ids = list(gemma.records)
    zero = {f"{label['smol-agnostic']} (transfer)": rho_of("smol-agnostic", gemma, all_ids),
            **baselines(gemma, all_ids, smol)}
    ref = zero[f"{label['smol-agnostic']} (transfer)"]
    tables.append({"lm": gemma.name, "data": gemma.data, "n_chains_in_file": len(gemma.records),
                   "split": "every chain (no labels of this LM used)", "test_ids": all_ids,
                   "rows": [{"row": n, "spearman": ci(r, args.n_boot, args.seed),
                             "transfer_minus_this": None if r is ref else ci(ref - r, args.n_boot, args.seed)}
                            for n, r in zero.items()]})
    _log(f"done in {_fmt_s(time.perf_counter() - t0)}")
    return {"command": " ".join(sys.argv), "smol_predictor": str(args.smol_predictor), "own_gemma": own_gemma,
            "gemma_val": val, "n_boot": args.n_boot, "tables": tables}


def to_markdown(res: dict[str, Any]) -> str:
    def c(m):
        return "" if not m else f"{m['mean']:+.3f} [{m['lo']:+.3f}, {m['hi']:+.3f}]"

    lines = []
    for t in res["tables"]:
        n = len(t["test_ids"])
        where = f"{t['split']} split" if t["split"] == "test" else t["split"]
        lines += [f"**{t['lm']}, {where}: {n} chains** (of {t['n_chains_in_file']} in `{t['data']}`)"
                  + (f". With {n} chains the intervals are not reliable (a bootstrap over {n} chains sees "
                     "little of the spread between chains)" if n < SMALL else ""), ""]
        if "own" in t:
            refs = t["references"]
            lines += ["| predictor | trained | Spearman [95% CI] | " + " | ".join(f"minus {x['title']}" for x in refs)
                      + " |", "|---|---|---|" + "---|" * len(refs)]
            lines += [f"| {r['row']} | {r['trained'] or ''} | {c(r['spearman'])} | "
                      + " | ".join(c(r["minus"][x["predictor"]]) for x in refs) + " |" for r in t["rows"]]
        else:
            lines += ["| scorer | Spearman [95% CI] | transfer minus this |", "|---|---|---|"]
            lines += [f"| {r['row']} | {c(r['spearman'])} | {c(r['transfer_minus_this'])} |" for r in t["rows"]]
        lines.append("")
    lines.append("Mean per-chain Spearman with 95% bootstrap intervals over chains; differences are paired "
                 "over the same chains.")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from predictor.predictor_dir import pretrained_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smol-data", default="data/ranked/gsm8k-smollm2-joint.jsonl")
    ap.add_argument("--smol-model", default=None, help="load_lm name or dir (default: the embedded SmolLM2)")
    ap.add_argument("--smol-predictor", default=str(pretrained_dir("smollm2-joint")),
                    help="the first LM's own predictor directory; its stored split gives the test chains")
    ap.add_argument("--gemma-data", default="data/ranked/gemma3-270m/gsm8k-gemma3-joint.jsonl")
    ap.add_argument("--gemma-model", default="gemma3-270m")
    ap.add_argument("--names", default="SmolLM2,Gemma", help="display names of the two LMs")
    ap.add_argument("--full-regressors", default=",".join(FULL_RECIPE["regressors"]),
                    help="regressors of the full-feature run (default: %(default)s)")
    ap.add_argument("--max-epochs", type=int, default=None, help="neural regressors' epoch cap")
    ap.add_argument("--out", default="runs/cross-lm")
    ap.add_argument("--cache", default=None, help="feature cache root (default: $PREDICTOR_CACHE/features)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if len(args.names.split(",")) != 2:
        ap.error("--names takes two comma-separated names")
    return args


def main(argv: list[str] | None = None) -> int:
    import torch

    from predictor.jsonl_io import atomic_write_text

    args = parse_args(argv)

    torch.set_num_threads(args.threads)
    res = build_table(args)
    md = to_markdown(res)
    out = Path(args.out)
    atomic_write_text(out / "table.json", json.dumps(res, indent=1))
    atomic_write_text(out / "table.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
