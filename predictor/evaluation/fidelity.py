"""Downstream fidelity: the objective of chains pruned by each scorer vs the greedy oracle's.

For a keep ratio r a scorer keeps the k = keep_count(n, r) tokens it ranks highest (pruned last),
in their original order. The greedy oracle's kept set at the same budget is the last k tokens of its
deletion order. Both objectives (JOINT, ANSWER) come from one forward pass per kept set.
`gap_recovered` = (scorer - random) / (greedy - random): 0 = no better than random, 1 = greedy.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..contiguous_selection import rank_values, select_kept_contiguous
from ..objective import upcast
from ..pruning import keep_count, select_kept
from ..metrics import bootstrap_ci

KEEP_RATIOS = (0.9, 0.7, 0.5, 0.3)
OBJECTIVES = ("joint", "answer")


def keep_indices(ranks, ratio: float) -> list[int]:
    """Sorted indices kept by `predictor.prune` (no protection) at keep ratio `ratio` given these ranks."""
    r = np.asarray(ranks)
    return select_kept(r, [""] * len(r), keep_count(len(r), ratio), np.zeros(len(r), dtype=bool))


def greedy_keep_indices(order: Sequence[int], ratio: float) -> list[int]:
    """The greedy oracle's survivors after deleting n - k tokens: order[n-k:], sorted."""
    n = len(order)
    return sorted(int(i) for i in order[n - keep_count(n, ratio):])


@torch.no_grad()
def both_objectives(model, prompt_ids: Sequence[int], reasoning_ids: Sequence[int],
                    answer_ids: Sequence[int]) -> tuple[float, float]:
    """(JOINT, ANSWER) log-likelihood of prompt + reasoning + answer from one forward pass.

    Same definition as `predictor.objective.sequence_objective` for each objective.
    """
    ids = list(prompt_ids) + list(reasoning_ids) + list(answer_ids)
    x = torch.tensor([ids], device=next(model.parameters()).device)
    logits = upcast(model(input_ids=x, use_cache=False).logits[0])
    lp = torch.log_softmax(logits[:-1], dim=-1).gather(1, x[0, 1:, None])[:, 0].double()
    return float(lp[len(prompt_ids) - 1:].sum()), float(lp[len(ids) - len(answer_ids) - 1:].sum())


def contiguous_keep_indices(ranks, ratio: float, gap_cost: float, position_weight: float = 0.0) -> list[int]:
    """Sorted indices kept by `predictor.prune` (no protection) with contiguity-aware selection."""
    r = np.asarray(ranks)
    return select_kept_contiguous(rank_values(r, position_weight), keep_count(len(r), ratio), gap_cost)


def chain_fidelity(model, record: Mapping, ranks: Mapping[str, np.ndarray],
                   ratios: Sequence[float] = KEEP_RATIOS,
                   contiguous: Mapping[str, tuple[str, float, float]] | None = None
                   ) -> dict[str, dict[str, list[float]]]:
    """Objectives of one ranked record pruned by each scorer and by greedy.

    contiguous: extra methods {name: (ranks name, gap_cost, position_weight)} that select from
    that scorer's ranks with contiguity-aware selection (what `prune` does with those settings).
    Returns {method: {objective: [value per ratio]}} with method in ranks' names, the contiguous
    names and "greedy". Identical kept sets are evaluated once.
    """
    rid = list(record["reasoning_ids"])
    cache: dict[tuple[int, ...], tuple[float, float]] = {}

    def value(kept: list[int]) -> tuple[float, float]:
        key = tuple(kept)
        if key not in cache:
            cache[key] = both_objectives(model, record["prompt_ids"], [rid[i] for i in kept], record["answer_ids"])
        return cache[key]

    kept_sets = {name: [keep_indices(r, q) for q in ratios] for name, r in ranks.items()}
    for name, (src, gap_cost, w) in (contiguous or {}).items():
        kept_sets[name] = [contiguous_keep_indices(ranks[src], q, gap_cost, w) for q in ratios]
    kept_sets["greedy"] = [greedy_keep_indices(record["order"], q) for q in ratios]
    out = {}
    for name, sets in kept_sets.items():
        vals = [value(k) for k in sets]
        out[name] = {"joint": [v[0] for v in vals], "answer": [v[1] for v in vals]}
    return out


def gap_recovered(scorer: np.ndarray, random: np.ndarray, greedy: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """(scorer - random) / (greedy - random) elementwise; NaN where |greedy - random| <= eps."""
    scorer, random, greedy = (np.asarray(a, dtype=np.float64) for a in (scorer, random, greedy))
    gap = greedy - random
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(gap) > eps, (scorer - random) / gap, np.nan)


def summarize_fidelity(per_chain: Sequence[Mapping[str, Mapping[str, Sequence[float]]]],
                       ratios: Sequence[float] = KEEP_RATIOS, baseline: str = "random",
                       n_boot: int = 1000, seed: int = 0) -> dict:
    """Aggregate `chain_fidelity` outputs over chains.

    Returns {"ratios", "methods": {method: {objective: {"mean": [per ratio], "lo", "hi", "delta_vs_greedy"
    (paired per-chain difference to greedy's objective) with "delta_lo", "delta_hi",
    "gap_recovered": [per ratio] | None, "gap_recovered_mean": float | None}}}}. Gap recovered is the
    mean over chains (zero gaps skipped) at each ratio; `gap_recovered_mean` averages the ratios;
    `gap_recovered_pooled[_mean]` is the same fraction computed on the chain-mean objectives.
    """
    methods = list(per_chain[0]) if per_chain else []
    out = {"ratios": list(ratios), "baseline": baseline, "n_chains": len(per_chain), "methods": {}}
    for m in methods:
        out["methods"][m] = {}
        for obj in OBJECTIVES:
            vals = np.array([c[m][obj] for c in per_chain], dtype=np.float64)  # [chains, ratios]
            cis = [bootstrap_ci(vals[:, j], n_boot=n_boot, seed=seed) for j in range(len(ratios))]
            grd = np.array([c["greedy"][obj] for c in per_chain], dtype=np.float64)
            dci = [bootstrap_ci(vals[:, j] - grd[:, j], n_boot=n_boot, seed=seed) for j in range(len(ratios))]
            entry = {"mean": [c[0] for c in cis], "lo": [c[1] for c in cis], "hi": [c[2] for c in cis],
                     "delta_vs_greedy": [c[0] for c in dci], "delta_lo": [c[1] for c in dci],
                     "delta_hi": [c[2] for c in dci], "gap_recovered": None, "gap_recovered_mean": None}
            if baseline in methods:
                rnd = np.array([c[baseline][obj] for c in per_chain], dtype=np.float64)
                g = gap_recovered(vals, rnd, grd)
                per_ratio = [float(np.nanmean(g[:, j])) if np.isfinite(g[:, j]).any() else float("nan")
                             for j in range(len(ratios))]
                entry["gap_recovered"] = per_ratio
                fin = [x for x in per_ratio if np.isfinite(x)]
                entry["gap_recovered_mean"] = float(np.mean(fin)) if fin else float("nan")
                # robust companion: the gap of the chain-mean objectives (small per-chain gaps cannot explode)
                pooled = gap_recovered(vals.mean(axis=0), rnd.mean(axis=0), grd.mean(axis=0))
                entry["gap_recovered_pooled"] = pooled.tolist()
                fin = pooled[np.isfinite(pooled)]
                entry["gap_recovered_pooled_mean"] = float(fin.mean()) if len(fin) else float("nan")
            out["methods"][m][obj] = entry
    return out


def random_ranks(n: int, seed: int, chain_index: int) -> np.ndarray:
    """A reproducible random permutation of 1..n (the random baseline when no random scorer ran)."""
    return np.random.default_rng([seed, chain_index]).permutation(n) + 1
