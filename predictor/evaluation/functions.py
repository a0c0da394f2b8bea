"""Function analysis: mean normalized rank per functional category (greedy oracle vs a predictor)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..lexical import CATEGORIES, categorize
from .metrics import normalize


def token_categories(tokens_list: Sequence[Sequence[str]], questions: Sequence[str]) -> list[list[str]]:
    return [categorize(list(t), q) for t, q in zip(tokens_list, questions)]


def category_ranks(categories: Sequence[Sequence[str]], ranks_list: Sequence[np.ndarray],
                   n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Category -> {n_tokens, mean, lo, hi}: mean normalized rank (1 = kept longest) of its tokens.

    The mean pools the category's tokens over all chains; the 95% interval resamples chains (not
    tokens), so one long chain does not count as many independent samples. Empty categories are omitted.
    """
    rng = np.random.default_rng(seed)
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
        mean = float(s.sum() / c.sum())
        idx = rng.integers(0, len(s), size=(n_boot, len(s)))
        boot = s[idx].sum(axis=1) / c[idx].sum(axis=1)
        lo, hi = (np.quantile(boot, [0.025, 0.975]) if len(s) > 1 else (mean, mean))
        out[cat] = {"n_tokens": int(c.sum()), "n_chains": len(s), "mean": mean,
                    "lo": float(min(lo, mean)), "hi": float(max(hi, mean))}
    return out


def function_analysis(categories: Sequence[Sequence[str]], greedy_ranks: Sequence[np.ndarray],
                      predicted: Mapping[str, Sequence[np.ndarray]], n_boot: int = 1000, seed: int = 0) -> dict:
    """{"greedy": category_ranks, <predictor name>: category_ranks, ...} side by side."""
    out = {"greedy": category_ranks(categories, greedy_ranks, n_boot, seed)}
    for name, ranks in predicted.items():
        out[name] = category_ranks(categories, ranks, n_boot, seed)
    return out
