"""`evaluate`: score every method on held-out ranked records and collect one JSON-able results dict.

The LM-dependent parts (observation passes, features, the ablation's regressors, the cost frontier)
run here; the numbers come from the building blocks on plain arrays (`predictor.metrics`,
`agreement`, `ablation`, `fidelity`, `categories`, `cost`), and `report` renders the dict.
"""
from __future__ import annotations

import dataclasses
import platform
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..metrics import bootstrap_ci, per_chain_kendall, per_chain_spearman
from .held_out import split_records

DEFAULT_SCORERS = ("random", "position", "surprisal", "local-gain", "attention", "snapkv", "think-clearly", "leave-one-out")
LEARNED = "learned"


def joint_vs_answer(joint: Sequence[dict], answer: Sequence[dict], n_boot: int = 2000, seed: int = 0,
                    predicted: Mapping[str, np.ndarray] | None = None) -> dict:
    """Spearman between the JOINT and ANSWER greedy ranks of chains labeled both ways (and, for
    chains in `predicted` (id -> ranks), between the predictor and the ANSWER ranks)."""
    by_id = {str(r["id"]): r for r in answer}
    pairs = [(j, by_id[str(j["id"])]) for j in joint if str(j["id"]) in by_id
             and len(by_id[str(j["id"])]["ranks"]) == len(j["ranks"])]
    if not pairs:
        return {"n_chains": 0, "note": "No chains are labeled with both the JOINT and the ANSWER objective yet "
                                       "(label some with `predictor label --objective answer`)."}
    a = [np.asarray(p[1]["ranks"]) for p in pairs]
    j = [np.asarray(p[0]["ranks"]) for p in pairs]
    rho = per_chain_spearman(j, a)
    m, lo, hi = bootstrap_ci(rho, n_boot=n_boot, seed=seed)
    out = {"n_chains": len(pairs), "spearman_mean": m, "spearman_lo": lo, "spearman_hi": hi,
           "kendall_mean": float(per_chain_kendall(j, a).mean()), "per_chain_spearman": rho.tolist(),
           "ids": [str(p[0]["id"]) for p in pairs]}
    if predicted:
        common = [(predicted[str(j["id"])], np.asarray(a["ranks"])) for j, a in pairs if str(j["id"]) in predicted]
        if common:
            m, lo, hi = bootstrap_ci(per_chain_spearman([c[0] for c in common], [c[1] for c in common]),
                                     n_boot=n_boot, seed=seed)
            out["predictor_vs_answer"] = {"n_chains": len(common), "spearman_mean": m, "spearman_lo": lo,
                                          "spearman_hi": hi}
    return out


def _progress(enabled: bool) -> Callable | None:
    if not enabled:
        return None
    from tqdm import tqdm

    return lambda it, desc=None: tqdm(it, desc=desc, unit="chain", leave=False, dynamic_ncols=True)


def _features(lm, records: Sequence[dict], spec, cache, progress) -> list:
    from ..features import extract_features_many
    from ..ranked import record_chain
    from ..training_data import FEATURE_GROUP

    starts = range(0, len(records), FEATURE_GROUP)
    out = []
    for a in (progress(starts, desc="features") if progress else starts):  # a group shares forward passes
        cs = [record_chain(r) for r in records[a:a + FEATURE_GROUP]]
        out += cache.features_for_many(lm, cs, spec) if cache is not None else extract_features_many(lm, cs, spec)
    for r, t in zip(records, out):
        if t.n != len(r["ranks"]):
            raise RuntimeError(f"chain {r['id']}: features have {t.n} rows, the record {len(r['ranks'])} tokens")
    return out


def evaluate(lm, records: Sequence[dict], predictor=None, scorers: Sequence[str] = DEFAULT_SCORERS, *,
             answer_records: Sequence[dict] = (), max_chains: int | None = None, ablation: bool = True,
             fidelity: bool = True, frontier: bool = True, refreshes: Sequence[int] = (2, 5, 10),
             strides: Sequence[int] = (2, 4, 8), frontier_chains: int = 3, ratios: Sequence[float] | None = None,
             max_train_chains: int | None = None, make_regressor: Callable | None = None, feature_cache=None,
             n_boot: int = 2000, seed: int = 0, progress: bool = True, meta: Mapping[str, Any] | None = None,
             unseen: bool = False) -> dict:
    """Run every section of the report on the held-out chains of `records` (ranked JOINT records).

    predictor: a RankPredictor, a predictor directory, or None (baselines only; no ablation split).
    The test chains are the predictor's stored test split; ablation regressors train on the others.
    unseen=True: every record the predictor never trained or was selected on is a test chain (data
    from elsewhere); there is no training split, so no ablation.
    """
    from ..rank_predictor import RankPredictor
    from ..ranked import record_chain
    from ..scorers import get_scorer
    from .ablation import ABLATION_FAMILIES, findings, run_ablation
    from .agreement import agreement, agreement_by_length, score_chains
    from .cost import cost_table, frontier_point, refresh_points, stride_points
    from .fidelity import KEEP_RATIOS, chain_fidelity, random_ranks, summarize_fidelity
    from .categories import function_analysis, token_categories

    prog = _progress(progress)
    ratios = tuple(ratios or KEEP_RATIOS)
    rp = predictor if isinstance(predictor, RankPredictor) or predictor is None \
        else RankPredictor.load(predictor, lm=lm)
    metadata = dict(getattr(rp.scorer, "metadata", {}) or {}) if rp is not None else {}
    objective = metadata.get("objective") or "joint"
    answer_records = list(answer_records) + [r for r in records if r.get("objective") == "answer"
                                             and objective != "answer"]
    records = [r for r in records if r.get("objective", "joint") == objective]
    test, train, split_desc = split_records(records, metadata, unseen)
    if max_chains is not None:
        test = test[:max_chains]
    if not test:
        raise ValueError("no test chains to evaluate (is the data the predictor's ranked file?)")
    true = [np.asarray(r["ranks"]) for r in test]
    chains = [record_chain(r) for r in test]

    sc = {name: get_scorer(name) for name in scorers if name != LEARNED}
    if rp is not None:
        sc = {LEARNED: rp.scorer, **sc}
    scored = score_chains(lm, chains, sc, progress=prog)
    for name, ranks in scored.ranks.items():
        for r, t, rec in zip(ranks, true, test):
            if len(r) != len(t):
                raise RuntimeError(f"chain {rec['id']}: {name} ranked {len(r)} tokens, the record has {len(t)} "
                                   "(data labeled with another LM or tokenizer?)")
    res: dict[str, Any] = {"meta": {
        **dict(meta or {}), "n_chains": len(test), "n_tokens": int(sum(len(t) for t in true)), "split": split_desc,
        "objective": test[0].get("objective", "joint"), "scorers": list(sc), "test_ids": [str(r["id"]) for r in test],
        "lm_name": getattr(lm, "name", None), "lm_fingerprint": getattr(lm, "fingerprint", None),
        "regressor": metadata.get("regressor"), "predictor_name": LEARNED,
        "device": _device(lm),
    }}
    res["agreement"] = agreement(scored.ranks, true, n_boot=n_boot, seed=seed)
    res["agreement_by_length"] = agreement_by_length(scored.ranks, true, seed=seed)

    cats = token_categories([r["tokens"] for r in test], [r["question"] for r in test])
    res["functions"] = function_analysis(cats, true, {k: v for k, v in scored.ranks.items() if k == LEARNED},
                                         seed=seed)

    if fidelity:
        per_chain = []
        defaults = rp.prune_defaults if rp is not None else {}
        contiguous = {}
        if defaults.get("gap_cost", 0.0) or defaults.get("position_weight", 0.0):  # what `prune` does by default
            contiguous[f"{LEARNED} (prune default)"] = (LEARNED, defaults.get("gap_cost", 0.0),
                                                         defaults.get("position_weight", 0.0))
        for i, rec in enumerate(prog(test, desc="fidelity") if prog else test):
            ranks = {k: v[i] for k, v in scored.ranks.items()}
            if "random" not in ranks:
                ranks["random"] = random_ranks(len(true[i]), seed, i)
            per_chain.append(chain_fidelity(lm.model, rec, ranks, ratios, contiguous))
        res["fidelity"] = summarize_fidelity(per_chain, ratios, n_boot=n_boot, seed=seed)

    # cost: seconds per chain of each scorer, greedy labeling from the records
    secs = {k: scored.seconds_per_chain(k, getattr(s, "needs_attention", False)) for k, s in sc.items()}
    passes = {k: 1.0 + float(np.mean(scored.extra_passes[k])) for k in sc}
    res["cost"] = {"scorer_seconds": secs, "machine": res["meta"]["device"],
                   "table": cost_table(secs, passes, [float(r["seconds"]) for r in test], [len(t) for t in true])}
    if frontier:
        sub = list(range(min(frontier_chains, len(test))))
        st, sr = [true[i] for i in sub], [test[i] for i in sub]
        pts = []
        for k in sc:
            kind = "refresh" if k == LEARNED else "scorer"
            label = f"{k} (1 pass)" if k == LEARNED else k
            obs_s = scored.observe_seconds
            if not getattr(sc[k], "needs_attention", False) and scored.observe_plain_seconds:
                obs_s = [float(np.mean(scored.observe_plain_seconds))] * len(obs_s)
            pts.append(frontier_point(label, [1 + scored.extra_passes[k][i] for i in sub],
                                      [scored.ranks[k][i] for i in sub], st,
                                      [obs_s[i] + scored.score_seconds[k][i] for i in sub], kind=kind, seed=seed))
        if rp is not None:
            pts += refresh_points(rp, [chains[i] for i in sub], st, [k for k in refreshes if k > 1],
                                  name=LEARNED, progress=prog)
        pts += stride_points(lm, sr, strides, progress=prog)
        res["cost"]["frontier"] = pts
        res["cost"]["frontier_chains"] = len(sub)

    if ablation and unseen:
        res["ablation_note"] = "Not run: evaluated on unseen data (--unseen), which has no training split."
    elif ablation and rp is not None:
        res.update(_ablation(lm, rp, train, test, true, max_train_chains, make_regressor, feature_cache,
                             n_boot, seed, prog, run_ablation, findings, ABLATION_FAMILIES))
    elif ablation:
        res["ablation_note"] = "Not run: no learned predictor (and so no training split) was given."

    learned = {str(r["id"]): scored.ranks[LEARNED][i] for i, r in enumerate(test)} if LEARNED in scored.ranks else None
    seen, answers = set(), []
    for r in answer_records:  # the same record may come from both arguments
        if str(r["id"]) not in seen:
            seen.add(str(r["id"]))
            answers.append(r)
    res["joint_vs_answer"] = joint_vs_answer(records, answers, n_boot=n_boot, seed=seed, predicted=learned)
    return res


def _device(lm) -> str:
    """The machine the timings were taken on, in words."""
    import os

    import torch

    dev = getattr(lm, "device", torch.device("cpu"))
    if getattr(dev, "type", "cpu") == "cuda":
        return f"{torch.cuda.get_device_name(dev)} ({platform.machine()}, {os.cpu_count()} CPU cores)"
    return f"CPU {platform.machine()}, {os.cpu_count()} cores, torch threads={torch.get_num_threads()}"


def _ablation(lm, rp, train, test, true, max_train_chains, make_regressor, feature_cache, n_boot, seed, prog,
              run_ablation, findings, families) -> dict:
    from ..features import DEFAULT_GROUPS, FeatureSpec

    if max_train_chains is not None:
        train = train[:max_train_chains]
    if len(train) < 2:
        return {"ablation_note": f"Not run: only {len(train)} training chains outside the test split."}
    spec = getattr(rp.scorer, "spec", None) or FeatureSpec()
    wanted = {g for groups in families.values() for g in groups}
    spec = dataclasses.replace(spec, groups=tuple(DEFAULT_GROUPS) + tuple(g for g in ("hidden", "pooled_attention")
                                                                           if g in wanted))
    tr = _features(lm, train, spec, feature_cache, prog)
    te = _features(lm, test, spec, feature_cache, prog)
    if make_regressor is None:
        from .ablation import default_regressor

        params = {}
        reg = getattr(rp.scorer, "regressor", None)
        if reg is not None and type(reg).__name__ == "LGBMRankRegressor":
            params = {"objective": reg.objective}  # same loss as the shipped predictor, fast settings
        make_regressor = lambda: default_regressor(seed, **params)  # noqa: E731
    name = type(make_regressor()).__name__
    abl = run_ablation(tr, [np.asarray(r["ranks"]) for r in train], te, true, families, make_regressor,
                       n_boot=n_boot, seed=seed, progress=prog)
    return {"ablation": abl, "ablation_findings": findings(abl, n_boot=n_boot, seed=seed), "ablation_regressor": name}
