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
from dataclasses import dataclass

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


@dataclass(frozen=True)
class SearchOptions:
    """Knobs of the exact search (validated on construction).

    objective: "joint" (log P(R_kept, A | Q), default) or "answer" (log P(A | Q, R_kept)).
    stride: tokens deleted per step; >1 is an approximation that is ~stride x faster.
    batch_tokens: candidate tokens per batched forward (None: by device memory).
    max_steps: stop after this many steps (partial order; for benchmarks). None: all.
    pack: score a block's candidates packed into one sequence (True) or as padded rows (False);
        None: packed on CPU, rows on CUDA. Same result either way, up to float round-off.
    reuse: carry each candidate's suffix KV to the next step (packed layout, stride 1 only);
        None: whenever packed. Same result either way, up to float round-off.
    bound: stop scoring a candidate once its upper bound falls below the best complete score
        (packed layout, stride 1 only); None: whenever packed. Same order and trajectory.

    The fields keep the order of `greedy_prune`'s former loose arguments, so
    `greedy_prune(lm, chain, "joint", 4)` still means SearchOptions("joint", 4)."""

    objective: str = "joint"
    stride: int = 1
    batch_tokens: int | None = None
    max_steps: int | None = None
    pack: bool | None = None
    reuse: bool | None = None
    bound: bool | None = None

    def __post_init__(self) -> None:
        check_objective(self.objective)
        if isinstance(self.stride, bool) or not isinstance(self.stride, int) or self.stride < 1:
            raise ValueError(f"stride must be an integer >= 1, got {self.stride!r}")
        for name in ("batch_tokens", "max_steps"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "batch_tokens" else 0)):
                raise ValueError(f"{name} must be an integer >= {1 if name == 'batch_tokens' else 0} or None, got {v!r}")
        if (self.reuse or self.bound) and self.pack is False:
            raise ValueError("suffix reuse and the bound need the packed layout (pack=True)")

    @classmethod
    def of(cls, *args, options: "SearchOptions | None" = None, **fields) -> "SearchOptions":
        """The options of a search call: `options` (keyword or the only positional argument), or the loose
        fields, positional in field order and/or by name (the former signature). Both: TypeError."""
        if len(args) == 1 and isinstance(args[0], SearchOptions):
            options, args = args[0], ()
        if options is None:
            return cls(*args, **fields)
        if args or fields:
            raise TypeError("pass either a SearchOptions or its fields, not both")
        return options


@torch.no_grad()
def greedy_prune(lm: LM, chain: ChainLike, *args, options: SearchOptions | None = None, **fields) -> GreedyResult:
    """Greedy pruning order of one chain's reasoning tokens (exact for stride=1).

    Args:
        lm: the LM (see `load_lm`).
        chain: mapping or Chain with question, reasoning, answer.
        options: the search's knobs (`SearchOptions`; default: the exact search, JOINT objective),
            passed as the only positional argument after `chain` or by keyword; or instead its fields,
            loose (`greedy_prune(lm, chain, "answer", max_steps=3)`).
    Returns:
        GreedyResult with order, ranks (1..n), trajectory (n values) and full_objective.
    Raises:
        ValueError: an invalid option (unknown objective, stride < 1, reuse=True or bound=True with
            pack=False, ...); TypeError: both options and loose fields.
    """
    opts = SearchOptions.of(*args, options=options, **fields)
    lay = encode_chain(lm.tokenizer, as_chain(chain), lm.max_length)
    return greedy_layout(lm, lay, opts)


@torch.no_grad()
def greedy_layout(lm: LM, lay: Layout, *args, options: SearchOptions | None = None, **fields) -> GreedyResult:
    """`greedy_prune` on an encoded layout (e.g. a partly pruned state's; see `greedy_prune` for the args)."""
    o = SearchOptions.of(*args, options=options, **fields)
    objective, stride, max_steps = o.objective, o.stride, o.max_steps
    if needs_reference(lm, lay):
        return greedy_layout_reference(lm, lay, objective, stride, max_steps)
    t0 = time.perf_counter()
    one = stride == 1  # deleting several per step needs every candidate's exact score
    sc = make_scorer(lm, lay, objective, o.batch_tokens, o.pack, o.reuse if one else False,
                     o.bound if one else False)
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
