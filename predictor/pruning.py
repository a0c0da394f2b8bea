"""Prune reasoning chains to a budget from a ranker's ranks (learned, baseline or the oracle).

    res = prune_with(rp, chain, keep_ratio=0.5)             # rp: a RankPredictor (any `Ranker`)
    res.text, res.kept, res.ratio

The user-facing entry that also takes predictor names is `predictor.prune` (in rank_predictor.py:
`prune(chain, keep_tokens=40, predictor="surprisal", protect="digits", step_aware=True)`) and
`RankPredictor.prune`; this module knows nothing of predictors beyond the `Ranker` protocol, so the
dependency runs one way (rank_predictor -> pruning).

Budgets are exact: keep_ratio r keeps round_half_up(r * n) tokens (at least 1), keep_tokens N keeps
min(N, n); threshold t keeps the tokens whose min-max normalized score is >= t (at least 1).
Tokens are removed lowest rank first (ranks from `RankPredictor.predict_ranks`, optionally refreshed);
the step-aware mode removes whole reasoning steps (lines) with the lowest mean rank first, then
tokens of the boundary step by rank, so the budget is still met exactly. Protected tokens are never
removed. Kept tokens stay in their original order.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, Union

import numpy as np

from .chains import Chain, ChainLike, as_chain_list
from .layout import ChainError, encode_chain
from .scorers.base import scores_to_ranks
from .scorers.think_clearly import token_steps

PROTECT_PRESETS = {
    "digits": lambda tok: any(ch.isdigit() for ch in tok),
    "math": lambda tok: any(ch.isdigit() or ch in "+-*/=×÷^%$" for ch in tok),
}
Protect = Union[None, str, Callable[[str], bool], Iterable[int]]


class Ranker(Protocol):
    """What pruning needs of a predictor (`RankPredictor` is one): its LM (tokenizer, context), ranks
    and scores of several chains at once."""

    lm: Any

    def predict_ranks(self, chains: list[Chain], refresh: int = 1) -> list[np.ndarray]: ...

    def score_many(self, chains: list[Chain]) -> list[np.ndarray]: ...


@dataclass
class PruneResult:
    """text: the pruned reasoning; kept: sorted kept token indices; ratio = len(kept) / n;
    ranks: int [n] the ranks the removal followed (1 = pruned first); chain: the input chain."""

    text: str
    kept: list[int]
    ratio: float
    ranks: np.ndarray
    n: int
    chain: Chain

    def pruned_chain(self) -> Chain:
        """The input chain with its reasoning replaced by the pruned text."""
        c = self.chain
        return Chain(c.question, self.text, c.answer, c.id, c.extra)


def round_half_up(x: float) -> int:
    """x rounded to the nearest integer, halves up (2.5 -> 3; Python's round gives 2)."""
    return int(math.floor(round(x, 9) + 0.5))


def keep_count(n: int, keep_ratio: float | None = None, keep_tokens: int | None = None) -> int:
    """Exact number of tokens to keep out of n: round_half_up(ratio * n) >= 1, or min(keep_tokens, n)."""
    if keep_ratio is not None:
        if not 0 < keep_ratio <= 1:
            raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio!r}")
        return min(n, max(1, round_half_up(keep_ratio * n)))
    if keep_tokens is not None:
        return min(n, keep_tokens)
    raise ValueError("give keep_ratio or keep_tokens")


def check_budget(keep_ratio: Any = None, keep_tokens: Any = None, threshold: Any = None) -> None:
    """Validate the budget options (exactly one; ranges); raises ValueError naming the bad value."""
    given = [k for k, v in (("keep_ratio", keep_ratio), ("keep_tokens", keep_tokens), ("threshold", threshold))
             if v is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of keep_ratio, keep_tokens, threshold (got {', '.join(given) or 'none'})")
    if keep_ratio is not None:
        if isinstance(keep_ratio, bool) or not isinstance(keep_ratio, numbers.Real) \
                or not math.isfinite(keep_ratio) or not 0 < keep_ratio <= 1:
            raise ValueError(f"keep_ratio must be a number in (0, 1], got {keep_ratio!r}")
    if keep_tokens is not None:
        if isinstance(keep_tokens, bool) or not isinstance(keep_tokens, numbers.Integral) or keep_tokens < 1:
            raise ValueError(f"keep_tokens must be an integer >= 1, got {keep_tokens!r}")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be a number in [0, 1] (normalized score), got {threshold!r}")


def protected_mask(protect: Protect, tokens: list[str]) -> np.ndarray:
    """bool [n]: tokens that must never be removed (preset name, predicate on the token, or indices)."""
    n = len(tokens)
    if protect is None:
        return np.zeros(n, dtype=bool)
    if isinstance(protect, str):
        if protect not in PROTECT_PRESETS:
            raise ValueError(f"unknown protect preset {protect!r}; choose from {', '.join(PROTECT_PRESETS)}")
        protect = PROTECT_PRESETS[protect]
    if callable(protect):
        return np.array([bool(protect(t)) for t in tokens], dtype=bool)
    mask = np.zeros(n, dtype=bool)
    for i in protect:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < n:
            raise ValueError(f"protect index {i!r} is not a token index in [0, {n})")
        mask[int(i)] = True
    return mask


def removal_order(ranks: np.ndarray, tokens: list[str], step_aware: bool) -> np.ndarray:
    """Token indices in removal order: by rank, or by (step mean rank, rank) when step_aware."""
    ranks = np.asarray(ranks)
    if not step_aware:
        return np.argsort(ranks, kind="stable")
    steps = token_steps(tokens)
    step_mean = np.array([ranks[steps == s].mean() for s in range(int(steps.max()) + 1)])
    return np.lexsort((ranks, step_mean[steps]))  # primary: step mean; secondary: own rank


class BudgetError(ChainError):
    """This chain cannot meet the budget (more protected tokens than it keeps)."""


def select_kept(ranks: np.ndarray, tokens: list[str], k: int, protected: np.ndarray,
                step_aware: bool = False) -> list[int]:
    """Exactly k kept indices (sorted): remove n - k unprotected tokens in removal order."""
    n = len(ranks)
    n_remove = n - k
    removable = [int(i) for i in removal_order(ranks, tokens, step_aware) if not protected[i]]
    if n_remove > len(removable):
        raise BudgetError(f"cannot keep exactly {k} of {n} tokens: {int(protected.sum())} tokens are protected; "
                         "raise the budget or protect fewer tokens")
    gone = set(removable[:n_remove])
    return [i for i in range(n) if i not in gone]


def prune_with(ranker: Ranker, chains: ChainLike | list[ChainLike], keep_ratio: float | None = None, *,
               keep_tokens: int | None = None, threshold: float | None = None, protect: Protect = None,
               step_aware: bool = False, refresh: int = 1) -> PruneResult | list[PruneResult]:
    """Prune one chain (or each of a list) to an exact budget with a ranker's ranks (all chains of a
    list ranked together, several per forward pass).

    Args:
        chains: a chain mapping/`Chain` or a list of them.
        keep_ratio / keep_tokens / threshold: exactly one budget (see the module docstring).
        protect: "digits" / "math" presets, a predicate on the decoded token, or token indices.
        step_aware: remove whole low-scoring reasoning steps (lines) first.
        refresh: forward passes per chain (re-score the survivors; importance is dynamic).
    Returns:
        PruneResult per chain (a list for a list input).
    """
    check_budget(keep_ratio, keep_tokens, threshold)
    if isinstance(refresh, bool) or not isinstance(refresh, numbers.Integral) or refresh < 1:
        raise ValueError(f"refresh must be an integer >= 1 (forward passes), got {refresh!r}")
    if isinstance(protect, str) and protect not in PROTECT_PRESETS:
        raise ValueError(f"unknown protect preset {protect!r}; choose from {', '.join(PROTECT_PRESETS)}")
    chains_, single = as_chain_list(chains)
    tok = ranker.lm.tokenizer
    # every chain's ids first: raises ChainError (empty, too long) before any forward pass
    ids = [encode_chain(tok, c, ranker.lm.max_length).reasoning_ids for c in chains_]
    if threshold is not None:
        scores = [np.asarray(s, dtype=np.float64) for s in ranker.score_many(chains_)]
        ranks = [scores_to_ranks(s) for s in scores] if refresh == 1 else ranker.predict_ranks(chains_, refresh=refresh)
    else:
        scores = [None] * len(chains_)
        ranks = ranker.predict_ranks(chains_, refresh=refresh)
    out = [_prune_one(tok, c, i, r, s, keep_ratio, keep_tokens, threshold, protect, step_aware)
           for c, i, r, s in zip(chains_, ids, ranks, scores)]
    return out[0] if single else out


def _prune_one(tok, chain: Chain, ids: list[int], ranks: np.ndarray, scores: np.ndarray | None, keep_ratio,
               keep_tokens, threshold, protect, step_aware) -> PruneResult:
    tokens = [tok.decode([t]) for t in ids]
    n = len(ids)
    protected = protected_mask(protect, tokens)
    if threshold is not None:
        span = scores.max() - scores.min()
        norm = (scores - scores.min()) / span if span > 0 else np.ones(n)
        k = max(1, int((norm >= threshold).sum()), int(protected.sum()))
    else:
        k = keep_count(n, keep_ratio, keep_tokens)
    kept = select_kept(ranks, tokens, k, protected, step_aware)
    text = tok.decode([ids[i] for i in kept], clean_up_tokenization_spaces=False)
    return PruneResult(text=text, kept=kept, ratio=len(kept) / n, ranks=np.asarray(ranks), n=n, chain=chain)
