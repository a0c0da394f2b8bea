r"""How often a shortlist holds greedy's next deletion, replayed on recorded exact gains (issue 28).

Reads the per-step gain tables of `benchmarks/gain_matrices.py` and replays shortlist policies along the
exact search's own trajectory. A policy keeps, per token, the rest of its gain (gain minus the free local
part) as of its last re-scoring, as `label --shortlist K --proposer none` does; each step it shortlists K
survivors plus the last deletion's two neighbours, "re-scores" them (their true gains become known), and
counts a hit when greedy's deletion is among them (then the real search deletes the same token: every
compared gain is fresh). Cost: the suffix inputs of the re-scored candidates, as a share of the exact
search's (every candidate every step).

Policies: `prio` (stale priority = local now + rest then, unscored rests 0: the shipped `--proposer none`),
`local` (the free local gain alone), `learned` (a LightGBM LambdaRank model over per-candidate state
features, trained by chain-grouped cross-validation on the other chains' replays of `prio`).

    python benchmarks/shortlist_recall.py --gains runs/gains/train --ranked data/ranked/gsm8k-smollm2-joint.jsonl \
        --shortlist 1,2,4,8,12,16 --folds 5 --out reports/frontier/tuning/shortlist-recall.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

FEATURES = ("local", "rest_stale", "scored", "age", "prio", "prio_rank", "local_rank", "prio_gap", "local_gap",
            "pos_frac", "suffix", "m", "del_before_1", "del_before_3", "del_after_1", "del_after_3",
            "dist_before", "dist_after", "n_since", "vol", "near_drift", "step_drift")


def load_chain(path: Path) -> list[dict[str, np.ndarray]]:
    """Per step: arrays over its survivors (orig, pos, gain, local, chosen) and m."""
    try:
        f = np.load(path, allow_pickle=False)
        step = f["step"].astype(int)
        cols = {k: f[k] for k in ("orig", "pos", "gain", "local", "chosen")}
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a gain_matrices.py table ({e})") from None
    out = []
    for t in range(step.max() + 1):
        s = step == t
        out.append({k: v[s] for k, v in cols.items()})
        out[-1]["orig"] = out[-1]["orig"].astype(int)
    return out


def _ranks_desc(x: np.ndarray) -> np.ndarray:
    r = np.empty(len(x))
    r[np.argsort(-x, kind="stable")] = np.arange(len(x))
    return r


class Replay(NamedTuple):
    """One policy replayed along one chain's exact trajectory."""

    hits: int  # steps whose shortlist held greedy's deletion
    steps: int
    cost: float  # suffix inputs of the re-scored candidates
    total: float  # suffix inputs of every candidate at every step (the exact search)
    rows: list  # (state features, graded relevance) per step, when collect
    missed: list  # per missed step: (best shortlisted gain minus greedy's, <= 0 nats; greedy's choice's rank
    # in the policy's scores, 0 = first; original-token distance to the nearest deletion since that choice's
    # last re-score, 999 if none)


def replay(steps: list[dict[str, np.ndarray]], answer_len: int, k: int, policy: str, model=None,
           collect: bool = False) -> Replay:
    """Replay `policy` with K = k along the trajectory in `steps` (see the module docstring)."""
    n = len(steps)
    rest = np.zeros(n)
    scored = np.zeros(n, dtype=bool)
    last_t = np.full(n, -1)
    delta = np.full(n, np.nan)  # per token: its rest's change at its last re-scoring, per step since the one before
    step_drift = np.nan  # mean |change| of the rests re-scored at the previous step
    deleted_at: list[tuple[int, int]] = []  # (orig index, step) of greedy's deletions so far
    hits = 0
    cost = total = 0.0
    rows = []
    missed = []
    last_pos = None
    for t, s in enumerate(steps):
        orig, pos, gain, local = s["orig"], s["pos"], s["gain"], s["local"]
        m = len(orig)
        suffix = (m - pos - 1 + answer_len).astype(float)
        prio = local + rest[orig]
        feats = None
        if policy == "learned" or collect:
            feats = state_features(orig, pos, local, rest, scored, last_t, delta, step_drift, deleted_at, t, m,
                                   answer_len)
        if policy == "prio":
            score = prio
        elif policy == "local":
            score = local
        elif policy == "learned":
            score = model.predict(feats)
        else:
            raise ValueError(policy)
        by = np.argsort(-score, kind="stable")
        near = [j for j in ((last_pos - 1, last_pos) if last_pos is not None else ()) if 0 <= j < m]
        short = sorted(set(by[:k].tolist()) | set(near))
        b = int(np.argmax(s["chosen"]))
        if b in short:
            hits += 1
        else:
            since = [d for d, at in deleted_at if at > last_t[orig[b]]]
            missed.append((float(gain[short].max() - gain[b]), int(np.where(by == b)[0][0]),
                           min((abs(int(orig[b]) - d) for d in since), default=999)))
        cost += suffix[short].sum()
        total += suffix.sum()
        if collect:
            rel = np.zeros(m)
            r = _ranks_desc(gain)
            rel[r < 8] = 1
            rel[r < 4] = 2
            rel[r < 2] = 3
            rel[b] = 4
            rows.append((feats, rel))
        true_rest = gain - local
        o = orig[short]
        was = scored[o]
        change = np.where(was, (true_rest[short] - rest[o]) / np.maximum(1, t - last_t[o]), np.nan)
        delta[o] = change
        step_drift = float(np.nanmean(np.abs(change))) if was.any() else np.nan
        rest[orig[short]] = true_rest[short]
        scored[orig[short]] = True
        last_t[orig[short]] = t
        deleted_at.append((int(orig[b]), t))
        last_pos = b
    return Replay(hits, n, cost, total, rows, missed)


def state_features(orig, pos, local, rest, scored, last_t, delta, step_drift, deleted_at, t, m,
                   answer_len) -> np.ndarray:
    """[m, len(FEATURES)] features of each survivor at step t (see FEATURES)."""
    r = rest[orig]
    prio = local + r
    age = np.where(last_t[orig] >= 0, t - last_t[orig], t + 1).astype(float)
    f = np.zeros((m, len(FEATURES)))
    f[:, 0] = local
    f[:, 1] = np.where(scored[orig], r, np.nan)
    f[:, 2] = scored[orig]
    f[:, 3] = age
    f[:, 4] = prio
    f[:, 5] = _ranks_desc(prio) / m
    f[:, 6] = _ranks_desc(local) / m
    f[:, 7] = prio.max() - prio
    f[:, 8] = local.max() - local
    f[:, 9] = pos / max(1, m - 1)
    f[:, 10] = m - pos - 1 + answer_len
    f[:, 11] = m
    # deletions since each candidate's last re-scoring, by side and distance (original indices)
    for i, o in enumerate(orig):
        since = [d for d, when in deleted_at if when > last_t[o]]
        before = [o - d for d in since if d < o]
        after = [d - o for d in since if d > o]
        f[i, 12] = sum(x <= 1 for x in before)
        f[i, 13] = sum(x <= 3 for x in before)
        f[i, 14] = sum(x <= 1 for x in after)
        f[i, 15] = sum(x <= 3 for x in after)
        f[i, 16] = min(before, default=999)
        f[i, 17] = min(after, default=999)
        f[i, 18] = len(since)
        f[i, 19] = abs(delta[o])
        near = [q for q in orig if 0 < abs(q - o) <= 3 and last_t[q] > last_t[o] and not np.isnan(delta[q])]
        f[i, 20] = np.mean([delta[q] for q in near]) if near else np.nan
    f[:, 21] = step_drift
    return f


def fit_ranker(rows: list, seed: int = 0):
    import lightgbm as lgb

    X = np.concatenate([f for f, _ in rows])
    y = np.concatenate([r for _, r in rows])
    group = [len(r) for _, r in rows]
    model = lgb.LGBMRanker(objective="lambdarank", n_estimators=300, learning_rate=0.05, num_leaves=31,
                           min_child_samples=20, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                           lambdarank_truncation_level=10, random_state=seed, n_jobs=1, verbose=-1)
    model.fit(X, y, group=group)
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gains", required=True, help="folder of gain_matrices.py tables")
    p.add_argument("--ranked", required=True, help="the ranked JSONL they came from (answer lengths)")
    p.add_argument("--shortlist", default="1,2,4", help="comma list of K")
    p.add_argument("--folds", type=int, default=5, help="chain-grouped cross-validation folds for `learned`")
    p.add_argument("--save-model", help="also fit `learned` on every chain and save it here (LightGBM text)")
    p.add_argument("--train-k", type=int, default=4, help="K of the prio replays the model learns from")
    p.add_argument("--out", help="JSON of the per-chain results")
    args = p.parse_args(argv)
    from predictor.metrics import bootstrap_ci

    try:
        ks = [int(x) for x in args.shortlist.split(",")]
    except ValueError:
        p.error(f"--shortlist: a comma list of integers, got {args.shortlist!r}")
    if any(k < 1 for k in ks) or args.train_k < 1:
        p.error("--shortlist and --train-k: K must be >= 1")
    files = sorted(Path(args.gains).glob("*.npz"))
    if not files:
        p.error(f"--gains {args.gains}: no .npz tables")
    if not 2 <= args.folds <= len(files):
        p.error(f"--folds must be between 2 and the number of tables ({len(files)}), got {args.folds}")
    if not Path(args.ranked).is_file():
        p.error(f"--ranked {args.ranked}: no such file")
    answers = {}
    for line in open(args.ranked):
        if line.strip():
            r = json.loads(line)
            answers[r["id"]] = len(r["answer_ids"])
    missing = [f.stem for f in files if f.stem not in answers]
    if missing:
        p.error(f"{len(missing)} table(s) have no record in --ranked {args.ranked}: {', '.join(missing[:5])}")
    try:
        chains = {f.stem: load_chain(f) for f in files}
    except ValueError as e:
        p.error(str(e))
    ids = sorted(chains)
    for path in (args.save_model, args.out):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    rows = {c: replay(chains[c], answers[c], args.train_k, "prio", collect=True).rows for c in ids}
    fold = {c: i % args.folds for i, c in enumerate(ids)}
    models = {}
    for f in range(args.folds):
        train = [r for c in ids if fold[c] != f for r in rows[c]]
        models[f] = fit_ranker(train)
    result = {"chains": ids, "by_k": {}}
    print(f"{len(ids)} chains, {sum(len(chains[c]) for c in ids)} steps")
    print(f"{'K':>3} {'policy':>8} {'recall (mean per chain)':>24} {'cost share':>10}")
    for k in ks:
        per = {}
        for policy in ("local", "prio", "learned"):
            rec, cst = [], []
            for c in ids:
                r = replay(chains[c], answers[c], k, policy, model=models[fold[c]])
                rec.append(r.hits / r.steps)
                cst.append(r.cost / r.total)
            per[policy] = {"recall": rec, "cost": cst}
            _, lo, hi = bootstrap_ci(rec)
            print(f"{k:>3} {policy:>8} {np.mean(rec):>10.3f} [{lo:.3f}, {hi:.3f}] {np.mean(cst):>10.3f}")
        d = np.array(per["learned"]["recall"]) - np.array(per["prio"]["recall"])
        _, lo, hi = bootstrap_ci(d)
        print(f"    learned - prio: {d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]")
        result["by_k"][k] = per
    miss = [x for c in ids for x in replay(chains[c], answers[c], args.train_k, "prio").missed]
    if miss:
        gap, rank, dist = (np.array(v) for v in zip(*miss))
        q = lambda v: " / ".join(f"{x:g}" for x in np.percentile(v, [25, 50, 75]).round(2))  # noqa: E731
        print(f"prio K={args.train_k} misses {len(miss)} of {sum(len(chains[c]) for c in ids)} steps: gain lost "
              f"(quartiles, nats) {q(-gap)}; greedy's choice's stale-priority rank {q(rank)}; no deletion within 3 "
              f"tokens since its last re-score {np.mean(dist > 3):.2f}")
    whole = fit_ranker([r for c in ids for r in rows[c]])
    imp = whole.booster_.feature_importance("gain")
    imp = imp / imp.sum()
    print("gain importance (fit on every chain): " + ", ".join(f"{FEATURES[i]} {imp[i]:.2f}" for i in np.argsort(-imp)))
    result["importance"] = dict(zip(FEATURES, imp.round(4).tolist()))
    if args.out:
        Path(args.out).write_text(json.dumps(result))
    if args.save_model:
        whole.booster_.save_model(args.save_model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
