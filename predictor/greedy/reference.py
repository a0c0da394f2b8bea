"""Plain greedy pruning: every candidate deletion scored by a full forward pass, no cache, no batching.

This is the paper's procedure (O(n^2) full prefills per chain), kept as the ground truth that the
fast labeler (`search.py`) is tested and benchmarked against.
"""
from __future__ import annotations

import time

from ..chains import ChainLike, as_chain
from ..layout import Layout, encode_chain
from ..lm import LM
from ..objective import check_objective, sequence_objective
from ..ranks import ranks_from_order
from .result import GreedyResult


def greedy_prune_reference(lm: LM, chain: ChainLike, objective: str = "joint", stride: int = 1,
                           max_steps: int | None = None) -> GreedyResult:
    """Reference greedy search; same result contract as `search.greedy_prune`."""
    lay = encode_chain(lm.tokenizer, as_chain(chain), lm.max_length)
    return greedy_layout_reference(lm, lay, objective, stride, max_steps)


def greedy_layout_reference(lm: LM, lay: Layout, objective: str = "joint", stride: int = 1,
                            max_steps: int | None = None) -> GreedyResult:
    """`greedy_prune_reference` on an encoded layout."""
    check_objective(objective)
    t0 = time.perf_counter()
    p, a = len(lay.prompt_ids), len(lay.answer_ids)
    kept = list(range(lay.n))
    full = sequence_objective(lm.model, lay.sequence(kept), p, a, objective)
    tokens = lay.total  # every candidate and state is a full forward of its sequence
    order: list[int] = []
    trajectory: list[float] = []
    steps = 0
    while kept and (max_steps is None or steps < max_steps):
        steps += 1
        scores = []
        for j in range(len(kept)):
            cand = kept[:j] + kept[j + 1:]
            scores.append(sequence_objective(lm.model, lay.sequence(cand), p, a, objective))
            tokens += lay.total - lay.n + len(cand)
        # stable sort: ties go to the lowest original index
        best = sorted(range(len(kept)), key=lambda j: -scores[j])[: min(stride, len(kept))]
        if len(best) == 1:
            after = scores[best[0]]
        else:
            rest = [k for j, k in enumerate(kept) if j not in best]
            after = sequence_objective(lm.model, lay.sequence(rest), p, a, objective)
            tokens += lay.total - lay.n + len(rest)
        for j in best:
            order.append(kept[j])
            trajectory.append(after)
        kept = [k for j, k in enumerate(kept) if j not in set(best)]
    return GreedyResult(order, ranks_from_order(order, lay.n), trajectory, full, time.perf_counter() - t0, lay,
                        lm_tokens=tokens)
