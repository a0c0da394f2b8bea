"""Prune a reasoning chain to a budget with any ranking method (learned, baseline or the oracle).

    res = prune_with(rp, chain, keep_ratio=0.5, protect="numbers")   # rp: a RankPredictor (any `Ranker`)
    res.text, res.kept, res.ratio, res.budget
    opts = PruneOptions(keep_tokens=40, step_aware=True)             # the options as one value, checked once
    res = prune_with(rp, chain, options=opts)

The user-facing entry that also takes predictor names is `predictor.prune` (in rank_predictor.py:
`prune(chain, keep_tokens=40, predictor="surprisal", protect="numbers", step_aware=True)`) and
`RankPredictor.prune`; this module knows nothing of predictors beyond the `Ranker` protocol, so the
dependency runs one way (rank_predictor -> pruning).

Budgets count tokens: keep_ratio r asks for k = round_half_up(r * n) tokens (at least 1), keep_tokens
N for k = min(N, n); threshold t keeps every unit holding a token whose min-max normalized score is
>= t (at least one unit). Tokens are removed in *units* (`predictor.pruning_units`): runs of tokens
that decode to whole characters, think tags and protected spans. Units go lowest rank first, a
unit's rank being its last-removed token's (ranks from `RankPredictor.predict_ranks`, optionally
refreshed); a unit larger than what is left to remove is passed over for the next one, so exactly k
tokens are kept whenever single-token units can fill the budget, and otherwise at most (largest
unit - 1) tokens more, never fewer. The step-aware mode removes whole reasoning steps (lines) with
the lowest mean rank first, then units of the boundary step by rank.
Protected units are never removed: when they hold more than k tokens, all of them are kept and the
result says so (`res.budget` < `len(res.kept)`, `res.ratio` the achieved ratio).
With gap_cost > 0 (or position_weight > 0), a keep_ratio / keep_tokens budget is filled by
contiguity-aware selection instead (`predictor.contiguous_selection`): the whole-unit set of k tokens
with the best sum of normalized ranks minus gap_cost per removed run, so fewer, longer gaps. A
predictor may carry defaults for both, selected on validation fidelity (`prune` in its
predictor.json; `RankPredictor.prune_defaults`); baselines and the oracle default to plain selection.
Kept tokens stay in their original order; where a removed gap would glue two numbers together
("3" + "4"), the pruned text has a space between them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .chain_lists import ChainFailure, check_errors, map_chains, map_chains_batched
from .chains import Chain, ChainLike
from .contiguous_selection import rank_values, select_kept_contiguous
from .layout import chain_name, encode_chain
from .prune_options import PruneOptions, check_contiguity, keep_count
from .pruning_units import (Protect, Units, crowded_by_protection, join_units, protected_fill, protection_warning,
                            pruning_units)
from .lexical import token_steps
from .ranks import scores_to_ranks

__all__ = ["PruneOptions", "PruneResult", "Ranker", "SMALL_BUDGET_TOKENS", "check_contiguity", "keep_count",
           "prune_with", "removal_order", "select_kept", "threshold_kept"]


# For a budget of at most this many tokens a ranker's default contiguity settings do not apply: a gap cost
# would outweigh every kept token's rank and keep the first or last token whatever the ranks; the
# top-ranked units win instead (an explicit gap_cost / position_weight still applies).
SMALL_BUDGET_TOKENS = 4


class Ranker(Protocol):
    """What pruning needs of a predictor (`RankPredictor` is one): its LM (tokenizer, context), ranks
    and scores of several chains at once. An optional `prune_defaults` mapping ({"gap_cost": float,
    "position_weight": float}) gives its default contiguity settings."""

    lm: Any

    def predict_ranks(self, chains: list[Chain], refresh: int = 1) -> list[np.ndarray]: ...

    def score_many(self, chains: list[Chain]) -> list[np.ndarray]: ...


@dataclass
class PruneResult:
    """text: the pruned reasoning; kept: sorted kept token indices; ratio = len(kept) / n (achieved);
    ranks: int [n] the ranks the removal followed (1 = pruned first); chain: the input chain;
    budget: the tokens the budget asked for (fewer than len(kept) when protected units or whole
    units needed more; see the module docstring); gap_cost, position_weight: the contiguity
    settings the selection used (0, 0: plain selection by rank; a budget of at most
    SMALL_BUDGET_TOKENS under the ranker's defaults selects plainly); n_protected: tokens in protected
    units (`protected_fill`: their share of the budget); spans: the [start, end) character runs of
    `chain.reasoning` (the string as given, surrounding whitespace included) that the kept tokens hold,
    in order (None when the tokenizer's decode does not give the reasoning back exactly).

    The scoring layout strips the reasoning (shared/DESIGN.md), so `kept` indexes the tokens of
    `chain.reasoning.strip()`; `spans` maps them back to the stored string. The whitespace around the
    reasoning is kept in `text`, and a result that keeps every token has `text == chain.reasoning`."""

    text: str
    kept: list[int]
    ratio: float
    ranks: np.ndarray
    n: int
    chain: Chain
    budget: int | None = None
    gap_cost: float = 0.0
    position_weight: float = 0.0
    n_protected: int = 0
    spans: list[tuple[int, int]] | None = None

    @property
    def protected_fill(self) -> float:
        """Protected tokens / budget (`pruning_units.protected_fill`); >= 0.9: warn, little is left to choose."""
        return protected_fill(self.n_protected, self.budget)

    @property
    def over_budget(self) -> bool:
        """True when more tokens were kept than the budget asked for."""
        return self.budget is not None and len(self.kept) > self.budget

    def pruned_chain(self) -> Chain:
        """The input chain with its reasoning replaced by the pruned text."""
        c = self.chain
        return Chain(c.question, self.text, c.answer, c.id, c.extra)


def removal_order(ranks: np.ndarray, tokens: list[str], step_aware: bool) -> np.ndarray:
    """Token indices in removal order: by rank, or by (step mean rank, rank) when step_aware."""
    ranks = np.asarray(ranks)
    if not step_aware:
        return np.argsort(ranks, kind="stable")
    steps = token_steps(tokens)
    step_mean = np.array([ranks[steps == s].mean() for s in range(int(steps.max()) + 1)])
    return np.lexsort((ranks, step_mean[steps]))  # primary: step mean; secondary: own rank


def select_kept(ranks: np.ndarray, tokens: list[str], k: int, protected: np.ndarray,
                step_aware: bool = False, groups: list[list[int]] | None = None) -> list[int]:
    """Sorted kept token indices: remove n - k tokens, whole units in removal order.

    groups: token indices of each unit (default: every token its own unit); protected: bool per
    token (a unit holding one is protected). A unit is ranked by its last token in the token removal
    order; one larger than what is left to remove is passed over. Keeps exactly k tokens when the
    units allow it, otherwise the fewest more the walk reaches; all protected tokens always stay."""
    n = len(ranks)
    groups = [[i] for i in range(n)] if groups is None else groups
    pos = np.empty(n, dtype=np.int64)
    pos[removal_order(ranks, tokens, step_aware)] = np.arange(n)
    unit_key = [int(pos[g].max()) for g in groups]
    left = n - k
    gone: set[int] = set()
    for u in np.argsort(unit_key, kind="stable"):
        if left <= 0:
            break
        g = groups[u]
        if protected[g].any() or len(g) > left:
            continue
        gone.update(g)
        left -= len(g)
    return [i for i in range(n) if i not in gone]


def prune_with(ranker: Ranker, chains: ChainLike | list[ChainLike], keep_ratio: float | None = None, *,
               keep_tokens: int | None = None, threshold: float | None = None, protect: Protect = None,
               step_aware: bool = False, refresh: int = 1, gap_cost: float | None = None,
               position_weight: float | None = None, errors: str = "raise", options: PruneOptions | None = None,
               ranks: Any = None, warn: bool = True) -> PruneResult | ChainFailure | list[PruneResult | ChainFailure]:
    """Prune one chain (or each of a list) to a budget with a ranker's ranks (all chains of a list
    ranked together, several per forward pass).

    Args:
        chains: a chain mapping/`Chain` or a list of them.
        keep_ratio / keep_tokens / threshold: exactly one budget (see the module docstring).
        protect: "digits" / "numbers" / "math" presets (`predictor.pruning_units`), a predicate on
            the decoded token, or token indices. Protected tokens are always kept, over the budget if
            need be (`PruneResult.budget`, `.over_budget`).
        step_aware: remove whole low-scoring reasoning steps (lines) first.
        refresh: forward passes per chain (re-score the survivors; importance is dynamic).
        gap_cost: contiguity-aware selection (`predictor.contiguous_selection`): the cost of each
            removed run, in units of one token's normalized rank (0: plain selection by rank). None:
            the ranker's default (`prune_defaults`: the "prune" entry of a trained predictor's
            predictor.json, if any), else 0.
        position_weight: in [0, 1], blend the token's relative position into its value (1 keeps
            a contiguous suffix). None: the ranker's default, else 0.
        errors: "raise": an unscorable chain raises ChainError (naming its list index); "skip": it
            is returned as a `ChainFailure` (index, id, error) in its place (the other chains of its
            batch are then pruned one at a time).
        options: all of the above but errors as one `PruneOptions` (instead of those arguments).
        ranks: precomputed ranks (int [n], 1 = pruned first; a list of them for a list of chains), e.g.
            `RankPredictor.predict_ranks` or the "ranks" of a `predictor predict` record: no forward
            pass runs, so several budgets cost one pass. Not with threshold (it needs the scores) or
            refresh > 1 (the ranks are final); ValueError for a rank array of the wrong length.
        warn: warn (`warnings.warn`, on stderr) when protected tokens fill >= 90% of a chain's
            budget (`pruning_units.crowded_by_protection`).
    Returns:
        PruneResult per chain (a list for a list input).
    """
    if options is None:
        options = PruneOptions(keep_ratio, keep_tokens, threshold, protect, step_aware, refresh, gap_cost,
                               position_weight)
    elif any(v is not None for v in (keep_ratio, keep_tokens, threshold, protect, gap_cost, position_weight)) \
            or step_aware or refresh != 1:
        raise ValueError("give the pruning options either as `options` or as arguments, not both")
    check_errors(errors)
    if ranks is None:
        out, single = map_chains_batched(lambda cs: _prune_many(ranker, cs, options), chains, errors)
    else:
        out, single = _prune_ranked(ranker, chains, ranks, options, errors)
    if warn:
        _warn_crowded(out, options)
    return out[0] if single else out


def _warn_crowded(results: list, options: PruneOptions) -> None:
    import warnings

    crowded = [r.chain.id or f"chains[{i}]" for i, r in enumerate(results)
               if isinstance(r, PruneResult) and crowded_by_protection(r.n_protected, r.budget)]
    msg = protection_warning(crowded, len(results), options.protect)
    if msg:
        warnings.warn(msg, stacklevel=3)


def _prune_ranked(ranker: Ranker, chains: ChainLike | list[ChainLike], ranks: Any, opts: PruneOptions,
                  errors: str) -> tuple[list, bool]:
    """`prune_with` on precomputed ranks: no forward pass."""
    from collections.abc import Mapping

    if opts.threshold is not None:
        raise ValueError("ranks= works with keep_ratio / keep_tokens budgets; threshold needs the scores (one "
                         "forward pass): drop ranks= or use keep_ratio / keep_tokens")
    if opts.refresh != 1:
        raise ValueError("refresh applies when prune predicts the ranks; with ranks= the ranks are given "
                         "(predict them with refresh=K): drop refresh")
    single = isinstance(chains, (Chain, Mapping))
    if single:
        given = [ranks]
    else:
        given = list(ranks) if not isinstance(ranks, np.ndarray) or ranks.ndim == 2 else [ranks]
        if len(given) != len(chains):
            raise ValueError(f"ranks= needs one rank array per chain: {len(given)} for {len(chains)} chains")
    contiguity = opts.contiguity(ranker)
    by_default = opts.gap_cost is None and opts.position_weight is None
    tok = ranker.lm.tokenizer

    def one(i: int, chain: Chain) -> PruneResult:
        ids = encode_chain(tok, chain, ranker.lm.max_length).reasoning_ids
        r = np.asarray(given[i])
        name = "ranks" if single else f"ranks[{i}]"
        if r.ndim != 1 or len(r) != len(ids):
            raise ValueError(f"{name} has {r.size} values for the {len(ids)} reasoning tokens of {chain_name(chain)}"
                             " (ranks of another tokenizer or chain?)")
        if not np.issubdtype(r.dtype, np.number):
            raise ValueError(f"{name} must hold numbers (ranks, 1 = pruned first), got {r.dtype}")
        return _prune_one(tok, chain, ids, r, None, opts, contiguity, by_default)

    return map_chains(one, chains, errors, with_index=True)


def _prune_many(ranker: Ranker, chains: list[Chain], opts: PruneOptions) -> list[PruneResult]:
    tok = ranker.lm.tokenizer
    contiguity = opts.contiguity(ranker)
    by_default = opts.gap_cost is None and opts.position_weight is None
    refresh = int(opts.refresh)
    # every chain's ids first: raises ChainError (empty, too long) before any forward pass
    ids = [encode_chain(tok, c, ranker.lm.max_length).reasoning_ids for c in chains]
    if opts.threshold is not None:
        scores = [np.asarray(s, dtype=np.float64) for s in ranker.score_many(chains)]
        ranks = [scores_to_ranks(s) for s in scores] if refresh == 1 else ranker.predict_ranks(chains, refresh=refresh)
    else:
        scores = [None] * len(chains)
        ranks = ranker.predict_ranks(chains, refresh=refresh)
    return [_prune_one(tok, c, i, r, s, opts, contiguity, by_default) for c, i, r, s in zip(chains, ids, ranks, scores)]


def threshold_kept(scores: np.ndarray, units: Units, threshold: float) -> list[int]:
    """Sorted kept token indices under a threshold: every protected unit and every unit holding a
    token whose min-max normalized score is >= threshold (the top-scored token's unit at least)."""
    span = scores.max() - scores.min()
    norm = (scores - scores.min()) / span if span > 0 else np.ones(len(scores))
    keep = units.protected.copy()
    for u, g in enumerate(units.groups):
        keep[u] |= bool((norm[g] >= threshold).any())
    keep[units.unit_of()[int(np.argmax(scores))]] = True
    return sorted(i for u in np.flatnonzero(keep) for i in units.groups[u])


def _prune_one(tok, chain: Chain, ids: list[int], ranks: np.ndarray, scores: np.ndarray | None, opts: PruneOptions,
               contiguity: tuple[float, float] = (0.0, 0.0), by_default: bool = False) -> PruneResult:
    """by_default: the contiguity settings are the ranker's defaults, which a budget of at most
    SMALL_BUDGET_TOKENS tokens ignores (plain selection: the top-ranked units win)."""
    n = len(ids)
    step_aware = opts.step_aware
    units = pruning_units(tok, ids, opts.protect)
    protected = units.protected_tokens()
    if opts.threshold is not None:
        kept = threshold_kept(scores, units, opts.threshold)
        k = len(kept)
        if opts.refresh > 1:
            kept = select_kept(ranks, _tokens(tok, ids, step_aware), k, protected, step_aware, units.groups)
    elif contiguity != (0.0, 0.0) and not (by_default and opts.keep_count(n) <= SMALL_BUDGET_TOKENS):
        k = opts.keep_count(n)
        kept = select_kept_contiguous(rank_values(ranks, contiguity[1]), k, contiguity[0], protected, units.groups)
    else:
        k = opts.keep_count(n)
        kept = select_kept(ranks, _tokens(tok, ids, step_aware), k, protected, step_aware, units.groups)
    unit_of = units.unit_of()
    kept_units = sorted({int(unit_of[i]) for i in kept})
    text, spans = _kept_text(tok, chain.reasoning, ids, units, kept_units, len(kept) == n)
    return PruneResult(text=text, kept=kept, ratio=len(kept) / n, ranks=np.asarray(ranks), n=n, chain=chain,
                       budget=k, gap_cost=contiguity[0], position_weight=contiguity[1],
                       n_protected=int(protected.sum()), spans=spans)


def _kept_text(tok, reasoning: str, ids: list[int], units: Units, kept_units: list[int], everything: bool
               ) -> tuple[str, list[tuple[int, int]] | None]:
    """(pruned text, kept character runs of `reasoning`). The layout scores `reasoning.strip()`; the
    whitespace around it is put back, so keeping every token gives `reasoning` byte for byte. When the
    units' texts are the stripped reasoning exactly (a lossless decode), they are its slices and the
    runs are exact; otherwise (a normalizing tokenizer) the runs are None."""
    body = reasoning.strip()
    lead = len(reasoning) - len(reasoning.lstrip())
    spans: list[tuple[int, int]] | None = None
    if "".join(units.texts) == body:
        starts = np.cumsum([0] + [len(t) for t in units.texts])
        spans = []
        for u in kept_units:
            a, b = lead + int(starts[u]), lead + int(starts[u + 1])
            if spans and spans[-1][1] == a:
                spans[-1] = (spans[-1][0], b)
            elif b > a:
                spans.append((a, b))
    if everything:
        return reasoning, spans
    first = tok.decode([ids[i] for i in units.groups[kept_units[0]]], clean_up_tokenization_spaces=False)
    text = join_units(units.texts, kept_units, first_text=first)
    return reasoning[:lead] + text + reasoning[lead + len(body):], spans


def _tokens(tok, ids: list[int], step_aware: bool) -> list[str]:
    """Decoded tokens (only the step-aware order reads them)."""
    return [tok.decode([t]) for t in ids] if step_aware else [""] * len(ids)
