"""`RankPredictor`: the drop-in replacement for the greedy search, and `prune` by predictor name.

    rp = RankPredictor.load()                 # shipped pretrained predictor + the embedded LM
    ranks = rp.predict_ranks(chain)           # int [n], 1 = pruned first (DESIGN.md convention)
    res = rp.prune(chain, keep_ratio=0.5)     # pruned text, kept indices, achieved ratio
    res = prune(chain, keep_tokens=40, predictor="surprisal", protect="numbers", step_aware=True)

A list of chains is observed several chains per forward pass (`observe.observe_batch`), with the
same ranks as one chain at a time. The budget logic lives in `predictor.pruning`, which this module
uses and which does not import it back.

Any registered scorer name ("surprisal", "greedy", ...) or a trained predictor directory loads the
same way, so the learned predictor, the baselines and the oracle are used identically.
Importance is dynamic (a token can become critical once others are gone): `refresh=k` re-observes
the survivors k times, deleting an equal share of the tokens after each pass.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Union

import numpy as np

from .chain_lists import ChainFailure, check_errors, map_chains_batched
from .chains import Chain, ChainLike, as_chain_list
from .layout import encode_chain
from .lm import LM
from .observe import Observation, observe_batch
from .predictor_dir import (LEARNED_ALIAS, PredictorMismatchError, check_fingerprint, default_predictor_dir,
                            extra_pass_note, named_predictor_dir, predictor_fingerprint, prune_defaults_of,
                            read_metadata, regressor_kind, shipped_predictors)
from .pruning import PruneOptions, PruneResult, prune_with
from .pruning_units import Protect
from .ranks import scores_to_ranks
from .scorers import DIRECTORY_SCORERS, SCORERS, LearnedScorer, Scorer, get_scorer

__all__ = ["RankPredictor", "PredictorMismatchError", "prune", "resolve_predictor"]


GREEDY_OPTIONS = ("budget", "shortlist", "proposer")  # options of the approximate greedy search only


def _check_scorer_options(name: str, options: dict[str, Any]) -> None:
    """ValueError for keyword options that the registered scorer `name` does not take (instead of its
    constructor's TypeError), and for the greedy search's own options given to any other scorer or to a
    predictor directory."""
    import inspect

    takes: list[str] = []
    if name in SCORERS:
        params = inspect.signature(SCORERS[name]).parameters.values()
        takes = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    greedy = [k for k in options if k in GREEDY_OPTIONS and k not in takes]
    if greedy:
        raise ValueError(f"{', '.join(greedy)} appl{'ies' if len(greedy) == 1 else 'y'} only to \"greedy\" (the "
                         f"greedy search), not to {name!r}")
    bad = [k for k in options if k not in takes]
    if name in SCORERS and bad:
        raise ValueError(f"scorer {name!r} takes {'the options ' + ', '.join(takes) if takes else 'no options'}, "
                         f"got {', '.join(bad)}")


def _predictor_lm(meta: dict, device: str | None) -> LM:
    """The LM a predictor's metadata names (the embedded default when it names the default or none)."""
    from .lm import DEFAULT_LM_NAME, load_lm

    name = meta.get("lm_name")
    return load_lm(None if name in (None, DEFAULT_LM_NAME) else name, device=device)


class RankPredictor:
    """An LM plus a scorer: ranks or prunes chains with one forward pass each (per refresh); a predictor
    whose features run a search group (`predictor_dir.search_groups`, e.g. smollm2-joint-loo's `loo`) adds
    n candidate scorings per chain of n tokens to each pass (`extra_pass_note`)."""

    def __init__(self, lm: LM, scorer: Scorer, name: str | None = None, directory: str | Path | None = None):
        self.lm = lm
        self.scorer = scorer
        self.name = name or scorer.name
        self.directory = None if directory is None else Path(directory)  # a trained predictor's folder

    @functools.cached_property
    def fingerprint(self) -> str | None:
        """A trained predictor's identity beyond its folder's name (`predictor_dir.predictor_fingerprint`,
        hashed on first use: only the labeler's records need it); None for a registered scorer, whose
        name is its identity."""
        return None if self.directory is None else predictor_fingerprint(self.directory)

    def __repr__(self) -> str:
        return f"RankPredictor({self.name!r}, lm={self.lm.name!r} [{self.lm.fingerprint}])"

    @classmethod
    def load(cls, path_or_name: str | Path | None = None, lm: LM | None = None, device: str | None = None,
             check_lm: bool = True, **scorer_kwargs: Any) -> "RankPredictor":
        """Load a predictor.

        path_or_name: None -> the shipped predictor trained for `lm` (matched by fingerprint, e.g.
            predictor/pretrained/gemma3-270m-joint for `load_lm("gemma3-270m")`), else
            predictor/pretrained/smollm2-joint; the name of any folder of predictor/pretrained
            (`predictor_dir.shipped_predictors()`: "smollm2-joint", "smollm2-joint-loo": the same recipe plus
            greedy's exact first step as features, n extra candidate scorings per chain, opt-in by name,
            "gemma3-270m-joint", "universal": the LM-agnostic predictor, pooled attention, logits,
            position and lexical features only, trained on SmolLM2's ranks, accepts any LM: pass `lm`);
            "learned": an older name of smollm2-joint (whatever `lm`);
            a registered scorer name (see `predictor.scorers.SCORERS`) -> that baseline / the oracle;
            otherwise a trained predictor directory.
        lm: the LM to score with; None loads the predictor's own LM (the embedded default for
            baselines). A given LM whose fingerprint differs from the predictor's raises
            PredictorMismatchError unless check_lm=False.
        """
        from .lm import load_lm

        name = None if path_or_name is None else str(path_or_name)
        if name == "finetuned":
            raise ValueError("a fine-tuned LM scorer loads from the predictor directory that `predictor finetune` "
                             "wrote (OUT/predictor, or predictor/pretrained/NAME with --ship): RankPredictor.load(DIR)")
        if name is not None and name in SCORERS and name not in DIRECTORY_SCORERS:
            _check_scorer_options(name, scorer_kwargs)
            scorer = get_scorer(name, **scorer_kwargs)
            lm = lm if lm is not None else load_lm(device=device)
            named = getattr(scorer, "proposer", None)
            if isinstance(named, (str, Path)):  # the approximate greedy search's proposer, by name or directory
                scorer.proposer = cls.load(named, lm=lm)
            elif getattr(scorer, "wants_proposer", False):  # none given: the LM's shipped predictor
                try:
                    scorer.proposer = cls.load(None, lm=lm)
                except PredictorMismatchError as e:
                    if getattr(scorer, "shortlist", None) is not None:  # as `label --shortlist K` refuses
                        raise ValueError(f"shortlist={scorer.shortlist}: no shipped predictor for this LM to propose "
                                         f"({e.cause}); pass proposer='none' (the "
                                         "K highest priorities only), 'universal' or a scorer name") from None
                    pass  # --budget: no shipped predictor for this LM, the lazy search runs without one
            return cls(lm, scorer, name)
        shipped = default_predictor_dir(lm) if name is None else named_predictor_dir(name)
        path = shipped if shipped is not None else Path(name)
        if not path.exists() and shipped is None:
            names = [k for k in SCORERS if k not in DIRECTORY_SCORERS] + [LEARNED_ALIAS, *shipped_predictors()]
            raise FileNotFoundError(f"{name!r} is neither a scorer nor a shipped predictor name ({', '.join(names)}) "
                                    "nor an existing predictor directory")
        _check_scorer_options(str(name if name is not None else path), scorer_kwargs)
        if regressor_kind(path) == "lm-ranker":  # a fine-tuned LM scorer: adapters for its base LM
            from .scorers.finetuned import FinetunedScorer

            meta = read_metadata(path)
            lm = lm if lm is not None else _predictor_lm(meta, device)  # the adapters are built on it
            scorer: Scorer = FinetunedScorer(path, lm, check_lm=check_lm, metadata=meta)
        else:
            scorer = LearnedScorer(path=path, check_lm=check_lm, **scorer_kwargs)
            lm = lm if lm is not None else _predictor_lm(scorer.metadata, device)
        if check_lm:
            check_fingerprint(scorer.metadata, lm, f"predictor {path}")
        elif isinstance(scorer, LearnedScorer):  # another LM on purpose: its shape must still fit the columns
            scorer.check_columns(lm)
        return cls(lm, scorer, path.name, path)

    # --- one pass ---------------------------------------------------------------------------------
    def observe_many(self, chains: list[ChainLike], kept: list[list[int] | None] | None = None) -> list[Observation]:
        """The forward passes this predictor's scorer needs (attention only when it uses it), several
        chains per pass; kept: per chain, the reasoning indices to observe (None: all)."""
        kw = dict(getattr(self.scorer, "observe_kwargs", {}))
        return observe_batch(self.lm, list(chains), attention=self.scorer.needs_attention, kept=kept, **kw)

    def observe(self, chain: ChainLike, kept: list[int] | None = None) -> Observation:
        """`observe_many` for one chain."""
        return self.observe_many([chain], [kept])[0]

    def score(self, chain: ChainLike) -> np.ndarray:
        """Scores of one chain from one pass, float [n]; higher = pruned later."""
        return self.score_many([chain])[0]

    def score_many(self, chains: list[ChainLike]) -> list[np.ndarray]:
        """Scores of each chain (float [n] each) from batched passes."""
        return [np.asarray(s, dtype=np.float64) for s in self.scorer.score_many(self.observe_many(chains))]

    def num_tokens(self, chain: ChainLike) -> int:
        """Reasoning tokens of a chain in the default layout (raises ChainError if unscorable)."""
        chain = as_chain_list(chain)[0][0]
        return encode_chain(self.lm.tokenizer, chain, self.lm.max_length).n

    # --- ranks ----------------------------------------------------------------------------------
    def predict_ranks(self, chains: ChainLike | list[ChainLike], refresh: int = 1,
                      errors: str = "raise") -> np.ndarray | list[np.ndarray]:
        """Predicted pruning ranks: int [n] per chain (1 = pruned first), a list for a list input.

        refresh: forward passes per chain (capped at n). Pass k scores the survivors, then deletes
        the ceil(remaining / passes left) lowest-scored ones, which take the next ranks. The chains
        of a list share forward passes (each refresh round is one batched round).
        errors: "raise" (an unscorable chain raises ChainError naming its list index) or "skip"
        (it is returned as a `ChainFailure` in its place; see `predictor.chain_lists`).
        """
        if isinstance(refresh, bool) or not isinstance(refresh, (int, np.integer)) or refresh < 1:
            raise ValueError(f"refresh must be an integer >= 1 (forward passes), got {refresh!r}")
        out, single = map_chains_batched(lambda cs: self._ranks_many(cs, int(refresh)), chains, errors)
        return out[0] if single else out

    def _ranks_many(self, chains: list[Chain], refresh: int) -> list[np.ndarray]:
        obs = self.observe_many(chains)
        ranks = [np.zeros(o.n, dtype=np.int64) for o in obs]
        alive = [np.arange(o.n) for o in obs]
        done = [0] * len(chains)
        left = [min(refresh, o.n) for o in obs]
        todo = list(range(len(chains)))
        while todo:
            scores = self.scorer.score_many([obs[i] for i in todo])
            nxt = []
            for i, sc in zip(todo, scores):
                sc = np.asarray(sc, dtype=np.float64)
                if len(sc) != len(alive[i]):
                    raise ValueError(f"scorer {self.scorer.name} returned {len(sc)} scores for {len(alive[i])} tokens")
                local = scores_to_ranks(sc)  # 1..m among the survivors
                if left[i] <= 1:
                    ranks[i][alive[i]] = done[i] + local
                    continue
                k = math.ceil(len(alive[i]) / left[i])
                gone = local <= k
                ranks[i][alive[i][gone]] = done[i] + local[gone]
                done[i] += k
                alive[i] = alive[i][~gone]
                left[i] -= 1
                nxt.append(i)
            if nxt:
                new = self.observe_many([chains[i] for i in nxt], [alive[i].tolist() for i in nxt])
                for i, o in zip(nxt, new):
                    obs[i] = o
            todo = nxt
        return ranks

    # --- pruning --------------------------------------------------------------------------------
    @property
    def prune_defaults(self) -> dict[str, float]:
        """Default contiguity settings of `prune` ({"gap_cost", "position_weight"}): the "prune" entry
        of a trained predictor's predictor.json (selected on validation fidelity), else {} (plain
        selection by rank). Raises ValueError naming the file for an entry that is not an object of
        valid values (`pruning.check_contiguity`)."""
        return prune_defaults_of(getattr(self.scorer, "metadata", None) or {}, getattr(self.scorer, "path", None))

    def extra_pass_note(self, n: int | None = None) -> str | None:
        """A note on the cost of a predictor whose features run a search group (`predictor_dir.search_groups`,
        e.g. smollm2-joint-loo's `loo`); None for a one-pass predictor or a scorer. n: reasoning tokens of
        the longest chain to rank, for an estimate of its cost (`predictor_dir.extra_pass_note`)."""
        return extra_pass_note(self.name, getattr(self.scorer, "metadata", None) or {}, n)

    def prune(self, chains: ChainLike | list[ChainLike], keep_ratio: float | None = None,
              **kwargs: Any) -> PruneResult | list[PruneResult]:
        """`predictor.pruning.prune_with` with this predictor (see there for the budget options)."""
        return prune_with(self, chains, keep_ratio, **kwargs)


PredictorLike = Union[RankPredictor, Scorer, str, Path, None]


@functools.lru_cache(maxsize=1)
def _default_lm() -> LM:
    """The embedded LM, loaded once per process for every `prune` call that names no LM."""
    from .lm import load_lm

    return load_lm()


@functools.lru_cache(maxsize=1)
def _default_predictor() -> RankPredictor:
    return RankPredictor.load(lm=_default_lm())


def resolve_predictor(predictor: PredictorLike = None, lm: LM | None = None) -> RankPredictor:
    """RankPredictor from a RankPredictor, a Scorer (+ lm), a scorer name / predictor dir, or None (pretrained).

    Without `lm`, scorers and scorer names use the embedded LM, loaded once per process."""
    if isinstance(predictor, RankPredictor):
        return predictor
    if isinstance(predictor, Scorer):
        return RankPredictor(lm if lm is not None else _default_lm(), predictor)
    if predictor is None and lm is None:
        return _default_predictor()
    if lm is None and isinstance(predictor, str) and predictor in SCORERS and predictor not in DIRECTORY_SCORERS:
        lm = _default_lm()
    return RankPredictor.load(predictor, lm=lm)


def prune(chains: ChainLike | list[ChainLike], keep_ratio: float | None = None, *, keep_tokens: int | None = None,
          threshold: float | None = None, protect: Protect = None, step_aware: bool = False, refresh: int = 1,
          gap_cost: float | None = None, position_weight: float | None = None,
          predictor: PredictorLike = None, lm: LM | None = None, errors: str = "raise"
          ) -> PruneResult | ChainFailure | list[PruneResult | ChainFailure]:
    """Prune one chain (or each of a list) to a budget (`predictor.pruning` has the rules).

    predictor: RankPredictor, Scorer (with lm), scorer name, predictor dir, or None (pretrained);
    the other arguments: see `predictor.pruning.prune_with`. Returns a PruneResult per chain (a
    `ChainFailure` in place of an unscorable one with errors="skip").
    """
    # every option before loading anything
    options = PruneOptions(keep_ratio, keep_tokens, threshold, protect, step_aware, refresh, gap_cost, position_weight)
    check_errors(errors)
    return prune_with(resolve_predictor(predictor, lm), chains, options=options, errors=errors)
