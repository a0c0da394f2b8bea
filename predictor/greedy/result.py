"""The result of a greedy pruning search (fast or reference)."""
from __future__ import annotations

from dataclasses import dataclass

from ..layout import Layout


@dataclass
class GreedyResult:
    """order: reasoning indices in deletion order; ranks[i]: step (1..n) at which token i goes;
    trajectory[k]: objective after the deletion of order[k]; full_objective: before any deletion;
    lm_tokens: tokens the search ran through the LM (prompt, states, candidate suffixes; None: not counted)."""

    order: list[int]
    ranks: list[int]
    trajectory: list[float]
    full_objective: float
    seconds: float
    layout: Layout
    lm_tokens: int | None = None
