"""Function analysis: mean normalized rank per functional category (greedy oracle vs a predictor)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..lexical import CATEGORIES, categorize
from ..metrics import bootstrap_ci, normalize


def token_categories(tokens_list: Sequence[Sequence[str]], questions: Sequence[str]) -> list[list[str]]:
    return [categorize(list(t), q) for t, q in zip(tokens_list, questions)]


def category_ranks(categories: Sequence[Sequence[str]], ranks_list: Sequence[np.ndarray],
                   n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Category -> {n_tokens, mean, lo, hi}: mean normalized rank (1 = kept longest) of its tokens.

    The mean pools the category's tokens over all chains; the 95% interval resamples chains (not
    tokens), so one long chain does not count as many independent samples. Empty categories are omitted.
    """
    out = {}
    for cat in CATEGORIES:
        sums, counts = [], []
        for cats, r in zip(categories, ranks_list):
            mask = np.array([c == cat for c in cats], dtype=bool)
            if mask.any():
                sums.append(float(normalize(r)[mask].sum()))
                counts.append(int(mask.sum()))
        if not counts:
            continue
        s, c = np.array(sums), np.array(counts)
        # per-chain category means weighted by token counts: the pooled mean, resampled by chain
        mean, lo, hi = bootstrap_ci(s / c, n_boot=n_boot, seed=seed, weights=c)
        out[cat] = {"n_tokens": int(c.sum()), "n_chains": len(s), "mean": mean, "lo": lo, "hi": hi}
    return out


def function_analysis(categories: Sequence[Sequence[str]], greedy_ranks: Sequence[np.ndarray],
                      predicted: Mapping[str, Sequence[np.ndarray]], n_boot: int = 1000, seed: int = 0) -> dict:
    """{"greedy": category_ranks, <predictor name>: category_ranks, ...} side by side."""
    out = {"greedy": category_ranks(categories, greedy_ranks, n_boot, seed)}
    for name, ranks in predicted.items():
        out[name] = category_ranks(categories, ranks, n_boot, seed)
    return out
