"""`RankPredictor`: the drop-in replacement for the greedy search.

    rp = RankPredictor.load()                 # shipped pretrained predictor + the embedded LM
    ranks = rp.predict_ranks(chain)           # int [n], 1 = pruned first (DESIGN.md convention)
    res = rp.prune(chain, keep_ratio=0.5)     # pruned text, kept indices, achieved ratio

Any registered scorer name ("surprisal", "greedy", ...) or a trained predictor directory loads the
same way, so the learned predictor, the baselines and the oracle are used identically.
Importance is dynamic (a token can become critical once others are gone): `refresh=k` re-observes
the survivors k times, deleting an equal share of the tokens after each pass.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .chains import Chain, ChainLike, as_chain_list
from .layout import encode_chain
from .lm import LM
from .observe import Observation, observe
from .scorers import DIRECTORY_SCORERS, SCORERS, LearnedScorer, Scorer, get_scorer
from .scorers.base import scores_to_ranks
from .scorers.learned import PredictorMismatchError, check_fingerprint, pretrained_dir

if TYPE_CHECKING:
    from .pruning import PruneResult

__all__ = ["RankPredictor", "PredictorMismatchError"]


def _regressor_kind(path: Path) -> str | None:
    """The "regressor" field of a predictor directory's predictor.json (None if unreadable: the
    loader that follows reports the problem)."""
    import json

    try:
        return json.loads((path / "predictor.json").read_text()).get("regressor")
    except (OSError, ValueError, AttributeError):
        return None


def _predictor_lm(meta: dict, device: str | None) -> LM:
    """The LM a predictor's metadata names (the embedded default when it names the default or none)."""
    from .lm import DEFAULT_LM_NAME, load_lm

    name = meta.get("lm_name")
    return load_lm(None if name in (None, DEFAULT_LM_NAME) else name, device=device)


class RankPredictor:
    """An LM plus a scorer: ranks or prunes chains with one forward pass each (per refresh)."""

    def __init__(self, lm: LM, scorer: Scorer, name: str | None = None):
        self.lm = lm
        self.scorer = scorer
        self.name = name or scorer.name

    def __repr__(self) -> str:
        return f"RankPredictor({self.name!r}, lm={self.lm.name!r} [{self.lm.fingerprint}])"

    @classmethod
    def load(cls, path_or_name: str | Path | None = None, lm: LM | None = None, device: str | None = None,
             check_lm: bool = True, **scorer_kwargs: Any) -> "RankPredictor":
        """Load a predictor.

        path_or_name: None -> the shipped pretrained predictor (predictor/pretrained/smollm2-joint);
            "universal" -> the shipped LM-agnostic predictor (pooled attention, logits, position and
            lexical features only; trained on SmolLM2's ranks, accepts any LM: pass `lm`);
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
            scorer = get_scorer(name, **scorer_kwargs)
            return cls(lm if lm is not None else load_lm(device=device), scorer, name)
        shipped = {None: pretrained_dir(), "learned": pretrained_dir(), "universal": pretrained_dir("universal")}
        path = shipped[name] if name in shipped else Path(name)
        if not path.exists() and name not in shipped:
            names = [k for k in SCORERS if k not in DIRECTORY_SCORERS] + ["learned", "universal"]
            raise FileNotFoundError(f"{name!r} is neither a scorer or shipped predictor name ({', '.join(names)}) "
                                    "nor an existing predictor directory")
        if _regressor_kind(path) == "lm-ranker":  # a fine-tuned LM scorer: adapters for its base LM
            from .predictor_dir import read_metadata
            from .scorers.finetuned import FinetunedScorer

            meta = read_metadata(path)
            lm = lm if lm is not None else _predictor_lm(meta, device)  # the adapters are built on it
            scorer: Scorer = FinetunedScorer(path, lm, check_lm=check_lm, metadata=meta)
        else:
            scorer = LearnedScorer(path=path, check_lm=check_lm, **scorer_kwargs)
            lm = lm if lm is not None else _predictor_lm(scorer.metadata, device)
        if check_lm:
            check_fingerprint(scorer.metadata, lm, f"predictor {path}")
        return cls(lm, scorer, path.name)

    # --- one pass -------------------------------------------------------------------------------
    def observe(self, chain: ChainLike, kept: list[int] | None = None) -> Observation:
        """The forward pass this predictor's scorer needs (attention only when it uses it)."""
        kw = dict(getattr(self.scorer, "observe_kwargs", {}))
        return observe(self.lm, chain, attention=self.scorer.needs_attention, kept=kept, **kw)

    def score(self, chain: ChainLike) -> np.ndarray:
        """Scores of one chain from one pass, float [n]; higher = pruned later."""
        return np.asarray(self.scorer.score(self.observe(chain)), dtype=np.float64)

    def num_tokens(self, chain: ChainLike) -> int:
        """Reasoning tokens of a chain in the default layout (raises ChainError if unscorable)."""
        chain = as_chain_list(chain)[0][0]
        return encode_chain(self.lm.tokenizer, chain, self.lm.max_length).n

    # --- ranks ----------------------------------------------------------------------------------
    def predict_ranks(self, chains: ChainLike | list[ChainLike], refresh: int = 1,
                      errors: str = "raise") -> np.ndarray | list[np.ndarray]:
        """Predicted pruning ranks: int [n] per chain (1 = pruned first), a list for a list input.

        refresh: forward passes per chain (capped at n). Pass k scores the survivors, then deletes
        the ceil(remaining / passes left) lowest-scored ones, which take the next ranks.
        errors: "raise" (an unscorable chain raises ChainError naming its list index) or "skip"
        (it is returned as a `ChainFailure` in its place; see `predictor.chain_lists`).
        """
        from .chain_lists import map_chains

        out, single = map_chains(lambda c: self._ranks_one(c, refresh), chains, errors)
        return out[0] if single else out

    def _ranks_one(self, chain: Chain, refresh: int) -> np.ndarray:
        if not isinstance(refresh, (int, np.integer)) or refresh < 1:
            raise ValueError(f"refresh must be an integer >= 1 (forward passes), got {refresh!r}")
        obs = self.observe(chain)
        n = obs.n
        ranks = np.zeros(n, dtype=np.int64)
        alive = np.arange(n)
        done = 0
        passes_left = min(int(refresh), n)
        while True:
            scores = np.asarray(self.scorer.score(obs), dtype=np.float64)
            if len(scores) != len(alive):
                raise ValueError(f"scorer {self.scorer.name} returned {len(scores)} scores for {len(alive)} tokens")
            local = scores_to_ranks(scores)  # 1..m among the survivors
            if passes_left <= 1:
                ranks[alive] = done + local
                return ranks
            k = math.ceil(len(alive) / passes_left)
            gone = local <= k
            ranks[alive[gone]] = done + local[gone]
            done += k
            alive = alive[~gone]
            passes_left -= 1
            obs = self.observe(chain, kept=alive.tolist())

    # --- pruning --------------------------------------------------------------------------------
    def prune(self, chains: ChainLike | list[ChainLike], keep_ratio: float | None = None,
              **kwargs: Any) -> "PruneResult | list[PruneResult]":
        """`predictor.pruning.prune` with this predictor (see there for the budget options)."""
        from .pruning import prune

        return prune(chains, keep_ratio, predictor=self, **kwargs)
