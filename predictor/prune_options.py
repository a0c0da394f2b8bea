"""The pruning options as one value, validated once (`PruneOptions`), and the budget rules they follow.

Exactly one budget: keep_ratio r asks for k = round_half_up(r * n) tokens (at least 1), keep_tokens N
for k = min(N, n) (`keep_count`); threshold t is a min-max normalized score in [0, 1]. The contiguity
settings (gap_cost, position_weight) apply to keep_ratio / keep_tokens budgets with plain selection;
None takes the ranker's `prune_defaults` (`resolve_contiguity`). Each check raises a ValueError naming
the option. `pruning.prune_with` prunes with them.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from .pruning_units import Protect, check_protect


@dataclass(frozen=True)
class PruneOptions:
    """The pruning options, validated once (ValueError naming the option): exactly one budget
    (keep_ratio, keep_tokens or threshold), what to protect, step-aware removal, forward passes
    (refresh) and the contiguity settings (None: the ranker's defaults); see `pruning.prune_with`."""

    keep_ratio: float | None = None
    keep_tokens: int | None = None
    threshold: float | None = None
    protect: Protect = None
    step_aware: bool = False
    refresh: int = 1
    gap_cost: float | None = None
    position_weight: float | None = None

    def __post_init__(self) -> None:
        check_budget(self.keep_ratio, self.keep_tokens, self.threshold)
        if isinstance(self.refresh, bool) or not isinstance(self.refresh, numbers.Integral) or self.refresh < 1:
            raise ValueError(f"refresh must be an integer >= 1 (forward passes), got {self.refresh!r}")
        check_protect(self.protect)
        check_contiguity(self.gap_cost, self.position_weight, self.step_aware, self.threshold)

    def contiguity(self, ranker: Any) -> tuple[float, float]:
        """(gap_cost, position_weight) to prune with (`resolve_contiguity`)."""
        return resolve_contiguity(ranker, self.gap_cost, self.position_weight, self.step_aware, self.threshold)

    def keep_count(self, n: int) -> int:
        return keep_count(n, self.keep_ratio, self.keep_tokens)


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
        return min(n, int(keep_tokens))  # a plain int, also for numpy integers (JSON-serializable budget)
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


def check_contiguity(gap_cost: Any = None, position_weight: Any = None, step_aware: bool = False,
                     threshold: Any = None) -> None:
    """Validate gap_cost (a number >= 0) and position_weight (in [0, 1]); either > 0 with step_aware or
    a threshold budget (which choose the kept set by their own rules) raises ValueError."""
    for name, v, hi in (("gap_cost", gap_cost, math.inf), ("position_weight", position_weight, 1.0)):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or not 0 <= v <= hi:
            rng = "a finite number >= 0" if hi == math.inf else "a number in [0, 1]"
            raise ValueError(f"{name} must be {rng}, got {v!r}")
        if v > 0 and (step_aware or threshold is not None):
            raise ValueError(f"{name} > 0 applies to keep_ratio / keep_tokens budgets with plain (not step-aware) "
                             "selection; drop it or the threshold / step_aware option")


def resolve_contiguity(ranker: Any, gap_cost: float | None, position_weight: float | None, step_aware: bool,
                       threshold: float | None) -> tuple[float, float]:
    """(gap_cost, position_weight) to prune with: the given values, else the ranker's
    `prune_defaults`, else 0; always (0, 0) for step-aware or threshold pruning."""
    if step_aware or threshold is not None:
        return 0.0, 0.0
    d = dict(getattr(ranker, "prune_defaults", None) or {})
    g = float(d.get("gap_cost", 0.0)) if gap_cost is None else float(gap_cost)
    w = float(d.get("position_weight", 0.0)) if position_weight is None else float(position_weight)
    return g, w
