"""The result of a greedy pruning search (fast or reference) and the order -> ranks conversion."""
from __future__ import annotations

from dataclasses import dataclass

from .layout import Layout


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


def ranks_from_order(order: list[int], n: int | None = None) -> list[int]:
    """ranks[i] = 1-based step at which token i was deleted (0 if a partial search never deleted it)."""
    ranks = [0] * (len(order) if n is None else n)
    for step, i in enumerate(order, 1):
        ranks[i] = step
    return ranks
