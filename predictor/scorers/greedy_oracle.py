"""The exact greedy oracle (Singh & Hakkani-Tur 2026) as a scorer: score = greedy pruning rank.

Runs the fast exact search of `predictor.greedy` on the observed state (obs.layout, which may be a
reduced, partly pruned state), so `ranks()` equals `greedy_prune(lm, chain).ranks` on a full chain.
Cost: n(n+1)/2 candidate evaluations (batched, with prefix KV reuse) instead of one pass; with
`budget` < 1 the approximate search of `predictor.greedy.approximate` spends about that share of it,
with a one-pass predictor (`proposer`, re-run on the survivors) proposing the candidates it re-scores
when one is given (`RankPredictor.load("greedy", budget=F)` gives the LM's shipped predictor). With
`shortlist` K the refreshed-shortlist search runs instead (`approximate.shortlist_options`, what `label
--shortlist K` runs): with `proposer="none"` the K highest priorities only, the best point measured
on long chains (docs/approximate_greedy.md: 0.706 on 25 held-out chains of 100-117 tokens, at 18% of
the exact search's LM tokens; one pass 0.588).
"""
from __future__ import annotations

import operator
from os import PathLike

import numpy as np

from ..greedy import SearchOptions, greedy_layout
from ..greedy.approximate import approximate_greedy_layout, check_budget, predictor_proposer, shortlist_options
from ..layout import encode_chain
from ..lm import LM
from ..objective import check_objective
from ..observe import Observation
from .base import Scorer


def require_lm(obs: Observation, who: str) -> LM:
    """The LM an observation was made with (scorers that run more passes need it)."""
    if obs.lm is None:
        raise ValueError(f"the {who} scorer needs the LM: observe the chain with predictor.observe.observe(lm, ...)")
    return obs.lm


class GreedyScorer(Scorer):
    """score[i] = step at which the greedy search deletes token i (1 = first).

    budget: share of the exact search's LM tokens to spend, in (0, 1]; 1 (default) is the exact
    search, below 1 the approximate one (agreement with exact: docs/approximate_greedy.md).
    proposer: with budget < 1, a one-pass `RankPredictor` of the same LM that the approximate search
    re-runs on the survivors to shortlist candidates (`approximate.predictor_proposer`); None: the
    lazy search without one; also a predictor directory or scorer name (`RankPredictor.load` loads it
    with the scorer's LM), or "none" (the lazy search: `RankPredictor.load` then attaches nothing). Used on
    full chains only (a reduced observation, a partly pruned state, runs without it).
    shortlist: K >= 1 runs the refreshed-shortlist search (budget must be 1): every step re-scores exactly
    the K highest priorities, the proposer's K first (re-run every 4 steps; default the LM's shipped
    predictor) and the last deletion's neighbours; proposer "none": the priorities only.
    Raises ValueError for a budget outside (0, 1], a shortlist below 1, or both a budget and a shortlist."""

    name = "greedy"

    def __init__(self, objective: str = "joint", batch_tokens: int | None = None, budget: float = 1.0,
                 proposer=None, shortlist: int | None = None):
        self.objective = check_objective(objective)
        self.batch_tokens = batch_tokens
        self.budget = check_budget(budget)
        if shortlist is not None:
            try:
                if isinstance(shortlist, bool):
                    raise TypeError
                shortlist = operator.index(shortlist)  # ints, numpy integers; not 2.5, "4" or True
            except TypeError:
                raise ValueError(f"shortlist must be an integer >= 1 or None, got {shortlist!r}") from None
            if shortlist < 1:
                raise ValueError(f"shortlist must be an integer >= 1 or None, got {shortlist!r}")
            if self.budget < 1:
                raise ValueError("budget and shortlist are two approximations: choose one")
        self.shortlist = shortlist
        if proposer is not None and not self.approximate:
            raise ValueError("proposer only applies with budget < 1 or a shortlist (the exact search proposes nothing)")
        self.no_proposer = isinstance(proposer, str) and proposer == "none"
        if self.no_proposer:
            proposer = None
        elif isinstance(proposer, (str, PathLike)):
            if not str(proposer).strip():
                raise ValueError("proposer: empty; give a RankPredictor, a predictor directory, a scorer name "
                                 "or 'none'")
        elif proposer is not None and not all(hasattr(proposer, a) for a in ("lm", "observe", "scorer")):
            raise TypeError(f"proposer must be a RankPredictor, a predictor directory, a scorer name or 'none', "
                            f"got {type(proposer).__name__}")
        self.proposer = proposer

    @property
    def wants_proposer(self) -> bool:
        """True when the approximate search would use a proposer and none was given
        (`RankPredictor.load` then attaches the LM's shipped predictor)."""
        return self.approximate and self.proposer is None and not self.no_proposer

    @property
    def approximate(self) -> bool:
        return self.budget < 1 or self.shortlist is not None

    def _proposer_for(self, lm: LM):
        """The proposer as a `RankPredictor`; a name or directory is resolved by `RankPredictor.load`
        (this module sits below the predictor stack and does not import it)."""
        if isinstance(self.proposer, (str, PathLike)):
            raise ValueError(f"proposer {str(self.proposer)!r} given by name: load the scorer with "
                             f"RankPredictor.load('greedy', lm=..., budget=..., proposer=...), which loads it")
        return self.proposer

    def score(self, obs: Observation) -> np.ndarray:
        lm = require_lm(obs, "greedy")
        if self.approximate:
            proposer = None
            if self.proposer is not None:
                full = encode_chain(lm.tokenizer, obs.chain, lm.max_length)
                if full.reasoning_ids == obs.layout.reasoning_ids:
                    proposer = predictor_proposer(self._proposer_for(lm), obs.chain)
            opts = None if self.shortlist is None else shortlist_options(self.shortlist, 4, proposer is not None)
            res = approximate_greedy_layout(lm, obs.layout, self.objective, self.budget, options=opts,
                                            batch_tokens=self.batch_tokens, proposer=proposer)
        else:
            res = greedy_layout(lm, obs.layout, SearchOptions(self.objective, batch_tokens=self.batch_tokens))
        return np.asarray(res.ranks, dtype=np.float64)

    def extra_forward_passes(self, n: int) -> int:
        share = self.budget if self.shortlist is None else min(1.0, 6 * (self.shortlist + 1) / max(1, n))
        return max(1, round(share * n * (n + 1) / 2))
