""""Think Clearly" baseline (Choi et al. 2025): attention from an end-of-thinking probe, per reasoning step.

The observation appends a probe ("Time is up. I should stop thinking ...") after the answer; a
token's own score is the probe's attention to it (obs.attn["probe_mean"], averaged over layers and
heads). Think Clearly prunes whole reasoning steps, so every token gets its step's mean score;
within a step its own score breaks ties, so the ranks stay a permutation.
"""
from __future__ import annotations

import numpy as np

from ..lexical import token_steps
from ..observe import Observation
from .base import Scorer


def step_scores(own: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Lexicographic (step mean, own score) as one float [n]: step order + within-step order in [0, 1)."""
    own = np.asarray(own, dtype=np.float64)
    n_steps = int(steps.max()) + 1 if len(steps) else 0
    means = np.array([own[steps == s].mean() for s in range(n_steps)])
    step_rank = np.empty(n_steps)
    step_rank[np.argsort(means, kind="stable")] = np.arange(n_steps)
    out = np.empty(len(own))
    for s in range(n_steps):
        idx = np.flatnonzero(steps == s)
        within = np.empty(len(idx))
        within[np.argsort(own[idx], kind="stable")] = np.arange(len(idx))
        out[idx] = step_rank[s] + within / len(idx)
    return out


class ThinkClearlyScorer(Scorer):
    """score = (mean probe attention of the token's step, then the token's own probe attention)."""

    name = "think-clearly"
    needs_attention = True

    def score(self, obs: Observation) -> np.ndarray:
        own = obs.attn["probe_mean"].astype(np.float64).mean(axis=(0, 1))  # [n]
        return step_scores(own, token_steps(obs.tokens))
