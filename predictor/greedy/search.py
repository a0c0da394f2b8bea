"""Exact greedy pruning (the labeler), fast: batched candidates, shared prompt cache, prefix KV reuse.

Greedy pruning (Singh & Hakkani-Tur 2026, arXiv 2601.03066): repeatedly delete the reasoning token
whose deletion leaves the highest objective (ties: lowest original index) until none is left.
Each step scores every candidate deletion (`candidates`); on CPU the scorer also carries each
candidate's suffix from one step to the next and stops scoring a candidate once an upper bound on its
score falls below the best complete score (`suffix_reuse`). The result equals
`reference` up to float round-off. `stride > 1` deletes the `stride` best candidates per step:
an explicit approximation. Sliding-window models on sequences longer than their window fall back to
the reference search.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..chains import ChainLike, as_chain
from ..layout import Layout, encode_chain
from ..lm import LM
from ..objective import check_objective
from ..ranks import ranks_from_order
from .candidates import CandidateScorer, needs_reference
from .reference import greedy_layout_reference
from .result import GreedyResult
from .suffix_reuse import SuffixReuseScorer


def make_scorer(lm: LM, lay: Layout, objective: str, batch_tokens: int | None = None,
                pack: bool | None = None, reuse: bool | None = None, bound: bool | None = None) -> CandidateScorer:
    """The candidate scorer for one chain: packed with suffix reuse and the bound on CPU, padded rows on CUDA.

    reuse / bound None: on whenever the layout is packed. bound=True makes `candidates` return upper
    bounds (not scores) for candidates that cannot be the argmax: callers that need every score pass
    bound=False. reuse=True or bound=True with pack=False raises ValueError."""
    # CPU: packed (no per-row prefix copies, no padding). CUDA: one padded row per candidate, since a
    # packed block's dense mask grows with the square of its length and GPU blocks hold up to 64k tokens.
    packed = lm.device.type == "cpu" if pack is None else bool(pack)
    if (reuse or bound) and not packed:
        raise ValueError("suffix reuse and the bound need the packed layout (pack=True)")
    if packed:
        return SuffixReuseScorer(lm, lay, objective, batch_tokens, reuse=reuse is not False, bound=bound is not False)
    return CandidateScorer(lm, lay, objective, batch_tokens)


@torch.no_grad()
def greedy_prune(
    lm: LM,
    chain: ChainLike,
    objective: str = "joint",
    stride: int = 1,
    batch_tokens: int | None = None,
    max_steps: int | None = None,
    pack: bool | None = None,
    reuse: bool | None = None,
    bound: bool | None = None,
) -> GreedyResult:
    """Greedy pruning order of one chain's reasoning tokens (exact for stride=1).

    Args:
        lm: the LM (see `load_lm`).
        chain: mapping or Chain with question, reasoning, answer.
        objective: "joint" (log P(R_kept, A | Q), default) or "answer" (log P(A | Q, R_kept)).
        stride: tokens deleted per step; >1 is an approximation that is ~stride x faster.
        batch_tokens: candidate tokens per batched forward (default: by device memory).
        max_steps: stop after this many steps (partial order; for benchmarks). Default: all.
        pack: score a block's candidates packed into one sequence (True) or as padded rows (False);
            None: packed on CPU, rows on CUDA. Same result either way, up to float round-off.
        reuse: carry each candidate's suffix KV to the next step (packed layout, stride 1 only);
            None: whenever packed. Same result either way, up to float round-off.
        bound: stop scoring a candidate once its upper bound falls below the best complete score
            (packed layout, stride 1 only); None: whenever packed. Same order and trajectory.
    Returns:
        GreedyResult with order, ranks (1..n), trajectory (n values) and full_objective.
    Raises:
        ValueError: unknown objective, stride < 1, or reuse=True or bound=True with pack=False.
    """
    lay = encode_chain(lm.tokenizer, as_chain(chain), lm.max_length)
    return greedy_layout(lm, lay, objective, stride, batch_tokens, max_steps, pack, reuse, bound)


@torch.no_grad()
def greedy_layout(
    lm: LM,
    lay: Layout,
    objective: str = "joint",
    stride: int = 1,
    batch_tokens: int | None = None,
    max_steps: int | None = None,
    pack: bool | None = None,
    reuse: bool | None = None,
    bound: bool | None = None,
) -> GreedyResult:
    """`greedy_prune` on an encoded layout (e.g. a partly pruned state's; see `greedy_prune` for the args)."""
    check_objective(objective)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if needs_reference(lm, lay):
        return greedy_layout_reference(lm, lay, objective, stride, max_steps)
    t0 = time.perf_counter()
    one = stride == 1  # deleting several per step needs every candidate's exact score
    sc = make_scorer(lm, lay, objective, batch_tokens, pack, reuse if one else False, bound if one else False)
    kept = list(range(lay.n))
    full = sc.step(kept)[0]
    order: list[int] = []
    trajectory: list[float] = []
    steps = 0
    while kept and (max_steps is None or steps < max_steps):
        steps += 1
        scores = sc.candidates(kept)
        best = np.argsort(-scores, kind="stable")[: min(stride, len(kept))]
        gone = set(int(b) for b in best)
        kept_next = [k for j, k in enumerate(kept) if j not in gone]
        if len(best) == 1:
            after = float(scores[best[0]])
            sc.advance(int(best[0]))
        else:
            after = sc.step(kept_next)[0]
        for b in best:
            order.append(kept[int(b)])
            trajectory.append(after)
        kept = kept_next
    return GreedyResult(order, ranks_from_order(order, lay.n), trajectory, full, time.perf_counter() - t0, lay,
                        lm_tokens=int(sc.tokens))
