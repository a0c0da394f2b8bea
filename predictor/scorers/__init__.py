"""Registry of token-ranking methods: every scorer is one small file plus one line here.

    from predictor.scorers import SCORERS, get_scorer
    ranks = get_scorer("surprisal").ranks(observe(lm, chain))
"""
from __future__ import annotations

from ..ranks import normalized_ranks, scores_to_ranks
from .attention import AttentionScorer
from .base import Scorer
from .greedy_oracle import GreedyScorer
from .leave_one_out import LeaveOneOutScorer
from .local_gain import LocalGainScorer
from .finetuned import FinetunedScorer
from .learned import LearnedScorer, PredictorMismatchError
from .position import PositionScorer
from .random_scorer import RandomScorer
from .snapkv import SnapKVScorer
from .surprisal import SurprisalScorer
from .think_clearly import ThinkClearlyScorer

SCORERS: dict[str, type[Scorer]] = {
    "random": RandomScorer,
    "position": PositionScorer,
    "surprisal": SurprisalScorer,
    "local-gain": LocalGainScorer,
    "attention": AttentionScorer,
    "snapkv": SnapKVScorer,
    "think-clearly": ThinkClearlyScorer,
    "greedy": GreedyScorer,
    "leave-one-out": LeaveOneOutScorer,
    "learned": LearnedScorer,
    "finetuned": FinetunedScorer,
}
# scorers built from a trained predictor directory (RankPredictor.load(DIR)), not by name alone
DIRECTORY_SCORERS = ("learned", "finetuned")

BASELINES = ("random", "position", "surprisal", "local-gain", "attention", "snapkv", "think-clearly")


def get_scorer(name: str, **kwargs) -> Scorer:
    """Instantiate a registered scorer by name (kwargs go to its constructor)."""
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; registered: {', '.join(SCORERS)}")
    return SCORERS[name](**kwargs)


__all__ = ["SCORERS", "DIRECTORY_SCORERS", "BASELINES", "Scorer", "get_scorer", "scores_to_ranks", "normalized_ranks",
           "PredictorMismatchError"] + [c.__name__ for c in SCORERS.values()]
