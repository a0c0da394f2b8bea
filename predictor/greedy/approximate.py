"""Approximate greedy pruning with a cost knob: lazy, windowed re-scoring of the greedy search.

The exact search (`greedy.search.greedy_layout`) scores every surviving candidate deletion at every
step, each over its whole suffix: about 0.45 x (n^3/6 + n^2 a/2) LM tokens with its bound, for n
reasoning and a answer tokens. This search spends a chosen share `budget` of that instead, with lazy
evaluation (Minoux 1978, the "lazy greedy" of submodular maximization) adapted to a likelihood that is
not submodular:

- a candidate's gain (objective after deleting it minus the current objective) is split into a local
  part, its own log-prob term and the next token's log-prob change, which the current sequence gives
  exactly and for free at every step (`_Sequence.local_gains`), and the rest of its suffix's change,
  known from its last re-scoring. Priority = local part now + rest then.
- each step re-scores, exactly on the current sequence (prefix KV reuse, one batched forward per
  round), the `batch` highest priorities not yet fresh, until the highest priority is fresh and no
  stale one is within `margin` of it, or the step's token allowance (`step_tokens`, unspent tokens
  carry over) runs out; it deletes the highest priority (ties: lowest index). `neighbours` kept tokens
  beside the last deletion are re-scored every step.
- `window`: a re-scoring counts the next `window` suffix tokens only (None: the whole suffix and the
  answer, exact gains); `init_window` the same for the first scoring of every candidate.

The current sequence itself stays exact: after each deletion its log-probs and KV are recomputed from
the deleted position on, so `trajectory` holds exact objectives. `budget` maps to these knobs by
`ApproximateOptions.for_budget`; `lm_tokens` counts what ran. With window None and a batch as large
as the chain every gain is exact and the order is the exact search's (tested).

Shortlist mode (`shortlist` K > 0 or `sample` > 0, off by default): no lazy stop. Every step re-scores
exactly, on the current sequence, a shortlist: the K highest (stale) priorities, the K survivors a
`proposer` (e.g. the one-pass predictor re-run on the current kept sequence, `predictor_proposer`;
every `propose_every` steps) ranks first-to-delete, `sample` random survivors (stochastic greedy,
Mirzasoleiman et al. 2015, seeded) and the `neighbours` of the last deletion; it deletes the best
fresh gain, so every compared score is fresh. The proposer's forward tokens count in `lm_tokens`.
Under a budget with a proposer (what `budget` < 1 runs when `proposer` is given; `for_budget(...,
proposer=True)`), shortlist mode spends a token allowance (`step_candidates` whole-suffix re-scores a
step), taking the shortlist in the order proposer's first, priorities' first, neighbours, ... while the
allowance pays; with nothing affordable it deletes the proposer's first.
Measured agreement and cost: docs/approximate_greedy.md.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import zip_longest

import numpy as np
import torch

from ..kv_cache import cache_kwargs, layer_kv, output_cache, prefix_cache
from ..layout import Layout
from ..lm import LM
from ..objective import check_objective
from ..ranks import ranks_from_order
from .candidates import CandidateScorer, local_gains
from .result import GreedyResult
from .search import SearchOptions, greedy_layout, make_scorer

# Bounded exact search's LM tokens / (n^3/6 + n^2 a/2): 0.45 on a 102-token GSM8K chain (101,046 tokens,
# runs/label long chains' `lm_tokens`), 0.55 on a 45-token one (12,833): the cost `budget` is a share of.
EXACT_COST_FACTOR = 0.45


def exact_cost_estimate(n: int, a: int) -> float:
    """Estimated LM tokens of the exact (bounded) search on n reasoning and a answer tokens."""
    return EXACT_COST_FACTOR * (n ** 3 / 6 + n * n * a / 2)


@dataclass(frozen=True)
class ApproximateOptions:
    """Knobs of the approximate search (validated).

    window: suffix targets scored per re-scored candidate (None: to the end, exact gains);
    init_window: the same for the first scoring of every candidate on the full chain;
    batch: candidates re-scored per lazy round (the highest priorities not yet fresh this step);
    neighbours: kept tokens on each side of the last deletion re-scored every step;
    step_tokens: re-scoring LM tokens allowed per step on average (unspent tokens carry over);
        None: no cap, each step re-scores until the highest priority is fresh (plain lazy greedy);
    margin: also re-score candidates whose priority is within `margin` nats of the best fresh gain
        (priorities are estimates, not bounds);
    drift: how far (nats) a stale rest is expected to move per deletion one position away, falling as
        1/distance and adding up in quadrature over the deletions since its last re-scoring; stale
        candidates are re-scored in the order of their optimistic priority (priority + that spread),
        and a step stops re-scoring once the best fresh gain beats every optimistic one by `margin`
        (0: plain stale priorities);
    tail: windowed re-scores keep the rest of the suffix beyond the window (its change as of the
        whole-suffix first scoring, which then also scores each window once more to split the two)
        instead of dropping it;
    pack: re-score a block's candidates packed into one sequence (`suffix_reuse`'s layout, through
        `packed_attention`) or as padded rows; None: packed on CPU, rows on CUDA (as the exact search);
    shortlist: K > 0 switches to shortlist mode (module doc): every step re-scores the K highest
        priorities, plus the proposer's K first-to-delete survivors when a proposer is given, and
        deletes the best fresh gain (`batch`, `step_tokens`, `margin`, `drift` then unused);
    propose_every: steps between proposer runs (between them its last scores of the survivors rank);
    sample: survivors drawn at random (seeded by `seed`) into every step's shortlist (> 0 alone:
        stochastic greedy);
    step_candidates: shortlist mode under a token allowance (what `for_budget` sets when a proposer
        is given): each step may spend what re-scoring this many whole-suffix candidates of the
        current sequence costs on average (with `window`, more windowed ones; unspent tokens carry
        over); the shortlist is taken in the order: the proposer's and the stale priorities'
        first-to-delete alternately (the last deletion's neighbours after the first pair), while the
        allowance pays; when nothing is affordable the step deletes the proposer's first; None: the
        whole shortlist every step."""

    window: int | None = None
    init_window: int | None = None
    batch: int = 2
    neighbours: int = 0
    step_tokens: float | None = None
    margin: float = 0.0
    pack: bool | None = None
    drift: float = 0.0
    tail: bool = False
    shortlist: int = 0
    propose_every: int = 1
    sample: int = 0
    seed: int = 0
    step_candidates: float | None = None

    def __post_init__(self) -> None:
        for name in ("window", "init_window"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be an integer >= 1 or None, got {v!r}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        for name in ("neighbours", "shortlist", "sample"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.propose_every < 1:
            raise ValueError(f"propose_every must be >= 1, got {self.propose_every}")
        if not self.drift >= 0:
            raise ValueError(f"drift must be >= 0, got {self.drift}")
        if not self.margin >= 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")
        if self.step_tokens is not None and self.step_tokens < 0:
            raise ValueError(f"step_tokens must be >= 0 or None, got {self.step_tokens}")
        if self.step_candidates is not None and not self.step_candidates >= 0:
            raise ValueError(f"step_candidates must be >= 0 or None, got {self.step_candidates}")

    @classmethod
    def for_budget(cls, budget: float, n: int, a: int, prompt: int = 0,
                   proposer: bool = False) -> "ApproximateOptions":
        """Knobs that spend about `budget` x the exact search's estimated LM tokens on a chain of n
        reasoning, a answer and `prompt` prompt tokens.

        With a proposer (`proposer=True`; shortlist mode under an allowance, `step_candidates`): the
        exact sequence updates (~n^2/4 + n a tokens) first; 16-token first scorings of every candidate
        when they take <= 10% of the budget (else none: priorities start from the free local gains);
        the proposer (one forward of prompt + kept + answer, ~prompt + n/2 + a tokens) every
        `propose_every` steps, the smallest power of two in 1..64 that keeps it within
        `PROPOSER_SHARE` of what is left; the rest as whole-suffix re-scores, `step_candidates` per
        step (their total cost ~ step_candidates x (n^2/4 + n a)).

        Without one (the lazy search): the exact sequence updates first, then the first scoring of
        every candidate (whole suffixes when that takes <= 30% of what is left, else 16-token
        windows), and the rest spread over the steps as lazy re-scoring (whole suffixes when a step
        can afford about two, else windows)."""
        check_budget(budget)
        total = budget * exact_cost_estimate(n, a)
        upkeep = n * n / 4 + n * a
        left = total - upkeep
        if proposer:
            init_window = 16 if 16 * n <= 0.1 * total else 1  # window 1: no forward, local gains only
            left -= 16 * n if init_window == 16 else 0
            per_call = prompt + n / 2 + a
            every = next((e for e in (1, 2, 4, 8, 16, 32) if n / e * per_call <= PROPOSER_SHARE * max(left, 0)), 64)
            left -= math.ceil(n / every) * per_call
            step = max(0.0, left) / max(1.0, upkeep)
            return cls(window=None, init_window=init_window, neighbours=1, shortlist=max(4, math.ceil(step) + 2),
                       propose_every=every, step_candidates=step)
        exact_init = n * n / 2 + n * a
        init_window = None if exact_init <= 0.3 * left else 16
        left -= exact_init if init_window is None else 16 * n
        per_step = max(0.0, left) / max(1, n)
        mean_suffix = n / 4 + a  # a candidate's suffix, averaged over the search
        window = None if per_step >= 2 * mean_suffix else max(8, int(per_step / 2))
        return cls(window=window, init_window=init_window, batch=2, neighbours=1, step_tokens=per_step)


# The proposer's share of a budget (after the exact sequence updates and first scorings) in `for_budget`.
PROPOSER_SHARE = 0.4
SHORTLIST_DEFAULTS = {"window": None, "init_window": 16, "neighbours": 1}  # the setting chosen on validation
# without a proposer: no first scoring, so a candidate never re-scored has rest 0, above the (mostly negative)
# rests of re-scored ones: optimistic priorities that bring every candidate into some shortlist
PRIORITY_SHORTLIST_DEFAULTS = {"window": None, "init_window": 1, "neighbours": 1}


def shortlist_options(shortlist: int = 4, propose_every: int = 4, proposer: bool = True) -> ApproximateOptions:
    """The refreshed-shortlist setting measured in docs/approximate_greedy.md ("pred4-every4": K = 4,
    the proposer re-run every 4 steps, whole-suffix re-scores, 16-token first scoring, the last
    deletion's neighbours); `label --shortlist K` runs it with a one-pass predictor as proposer.
    proposer=False ("prioK", `label --shortlist K --proposer none`): the K highest priorities and the
    neighbours only, from optimistic first priorities (the free local gains, no first scoring)."""
    if not proposer:
        return ApproximateOptions(shortlist=shortlist, **PRIORITY_SHORTLIST_DEFAULTS)
    return ApproximateOptions(shortlist=shortlist, propose_every=propose_every, **SHORTLIST_DEFAULTS)


def check_budget(budget: float) -> float:
    if isinstance(budget, bool) or not (isinstance(budget, (int, float)) and 0 < budget <= 1):
        raise ValueError(f"budget must be in (0, 1] (the share of the exact search's cost), got {budget!r}")
    return float(budget)


class _Sequence:
    """The current kept sequence, exact: KV of prompt + seq[:-1] per layer [1, kvh, p+L-1, hd], token
    log-probs tok_lp [L] (float64; tok_lp[t] = log p(seq[t] | prompt + seq[:t])) and the first-token
    log-prob rows [m+1, V] (rows[j]: next-token distribution after prompt + seq[:j]). Shares the
    prompt's KV, the LM head and the token count with the candidate scorer `sc`."""

    def __init__(self, sc: CandidateScorer):
        self.sc, self.lay, self.p, self.dev = sc, sc.lay, sc.p, sc.dev
        self.kv = sc.prompt_kv  # prompt only, for now
        self.kept: list[int] = []
        self.seq: list[int] = []
        self.tok_lp = torch.zeros(0, dtype=torch.float64, device=self.dev)
        self.rows = sc.prompt_last_lp[None]
        self.recompute(list(range(self.lay.n)), 0)

    @property
    def m(self) -> int:
        return len(self.kept)

    def recompute(self, kept: list[int], start: int) -> None:
        """Make `kept` the current sequence, reusing everything before sequence position `start`
        (the first position whose token or context changed)."""
        lay, p, sc = self.lay, self.p, self.sc
        seq = [lay.reasoning_ids[i] for i in kept] + lay.answer_ids
        m = len(kept)
        kv = [(k[:, :, : p + start], v[:, :, : p + start]) for k, v in self.kv]
        x = seq[start:-1]
        rows = self.rows[: start + 1] if start > 0 else sc.prompt_last_lp[None]
        tok_lp = torch.cat([self.tok_lp[:start], rows[start][seq[start]].double()[None]])
        if x:
            pos = torch.arange(p + start, p + len(seq) - 1, device=self.dev)[None]
            out = sc.base(input_ids=torch.tensor([x], device=self.dev), position_ids=pos, use_cache=True,
                          **cache_kwargs(sc.base, prefix_cache(kv, p + start, 1)))
            sc.tokens += len(x)
            lp = sc._logprobs(out.last_hidden_state[0])
            tgt = torch.tensor(seq[start + 1:], device=self.dev)
            tok_lp = torch.cat([tok_lp, lp.gather(1, tgt[:, None])[:, 0].double()])
            rows = torch.cat([rows, lp[:max(0, m - start)]])  # rows[j] for j = start+1 .. m
            kv = layer_kv(output_cache(out))
        self.kept, self.seq, self.tok_lp, self.rows, self.kv = list(kept), seq, tok_lp, rows[: m + 1], kv

    def local_gains(self, joint: bool) -> np.ndarray:
        """Per kept position j, the exact part of deleting it that needs no forward pass [m] (float64;
        `candidates.local_gains` of this state)."""
        return local_gains(self.seq, self.m, self.tok_lp, self.rows, joint)

    def objective(self, joint: bool) -> float:
        return float(self.tok_lp.sum() if joint else self.tok_lp[self.m:].sum())


class _WindowScorer:
    """Gains of deleting chosen kept positions of a `_Sequence`, each over a window of its suffix: the
    local gain plus the change of the next window targets' log-probs, run by the candidate scorer
    (`CandidateScorer.suffix_sums`: packed or padded rows)."""

    def __init__(self, cur: _Sequence, joint: bool, window: int | None):
        self.cur, self.joint, self.window = cur, joint, window

    def inputs(self, j: int) -> int:
        """Suffix inputs (LM tokens) that re-scoring sequence position j runs: its window targets but the
        first, which the unchanged prefix predicts."""
        w = len(self.cur.seq) - 1 - j
        return max(0, (w if self.window is None else min(self.window, w)) - 1)

    cost = inputs

    def gains(self, js: list[int]) -> np.ndarray:
        """gain[i] = (windowed) objective after deleting position js[i] minus the current objective."""
        cur, sc = self.cur, self.cur.sc
        if not js:
            return np.zeros(0)
        order = sorted(range(len(js)), key=lambda i: js[i])
        cands = [js[i] for i in order]
        lens = [self.inputs(j) for j in cands]
        new = sc.suffix_sums(cur.seq, cur.m, cur.kv, cands, lens)
        tok_lp = cur.tok_lp
        old = torch.stack([tok_lp[j + 2 + sc.first_used(cur.m, j): j + 2 + ln].sum() if ln else tok_lp.new_zeros(())
                           for j, ln in zip(cands, lens)])
        local = cur.local_gains(self.joint)[cands]
        out = np.zeros(len(js))
        out[order] = local + (new - old).cpu().numpy()
        return out


@torch.no_grad()
def approximate_greedy_layout(lm: LM, lay: Layout, objective: str = "joint", budget: float = 0.1,
                              options: ApproximateOptions | None = None,
                              batch_tokens: int | None = None,
                              proposer: Callable[[list[int]], tuple[np.ndarray, int]] | None = None) -> GreedyResult:
    """Approximate greedy pruning order of an encoded chain (see module doc).

    Args:
        lm: the LM.
        lay: the chain's layout (`layout.encode_chain`).
        objective: "joint" or "answer" (the answer objective scores whole suffixes: window None).
        budget: share of the exact search's estimated LM tokens to spend, in (0, 1]; 1 runs the
            exact search itself.
        options: explicit knobs (overrides `budget`).
        batch_tokens: candidate tokens per batched forward (default: by device).
        proposer: for shortlist mode (`options.shortlist`): kept original indices -> (scores of those
            tokens, higher = pruned later; LM tokens it ran), e.g. `predictor_proposer`.
    Returns:
        GreedyResult (order, ranks, trajectory of the exact objective after each deletion,
        full_objective, seconds, lm_tokens).
    Raises:
        ValueError: unknown objective or budget outside (0, 1].
    """
    check_objective(objective)
    check_budget(budget)
    if options is None and budget >= 1:
        return greedy_layout(lm, lay, SearchOptions(objective, batch_tokens=batch_tokens))
    t0 = time.perf_counter()
    opts = options or ApproximateOptions.for_budget(budget, lay.n, len(lay.answer_ids), len(lay.prompt_ids),
                                                    proposer=proposer is not None)
    joint = objective == "joint"
    sc = make_scorer(lm, lay, objective, batch_tokens, opts.pack, reuse=False, bound=False)
    cur = _Sequence(sc)
    rescore = _WindowScorer(cur, joint, opts.window if joint else None)
    whole = _WindowScorer(cur, joint, None)  # whole-suffix costs: the allowance's unit
    full = cur.objective(joint)
    n = lay.n
    # A candidate's gain = its local part (own log-prob term and the first suffix token's change, exact
    # and free from the current sequence at every step) + the rest of its suffix's change, known from
    # its last re-scoring: priority = local part now + rest then.
    gains = _WindowScorer(cur, joint, opts.init_window if joint else None).gains(list(range(n)))
    rest = gains - cur.local_gains(joint)  # by original token index (all kept at the start)
    tail = np.zeros(n)  # by original token index: a windowed re-score's stale remainder (opts.tail)
    if opts.tail and joint and opts.window is not None and opts.init_window is None:
        tail = gains - rescore.gains(list(range(n)))
    spread2 = np.zeros(n)  # by original token index: expected squared drift of `rest` since its re-scoring
    order: list[int] = []
    trajectory: list[float] = []
    bank = 0.0
    last = None  # sequence position of the last deletion
    shortlisting = bool(opts.shortlist or opts.sample)
    rng = np.random.default_rng(opts.seed)
    proposed: dict[int, float] | None = None  # by original token index: the proposer's last scores
    proposer_tokens = 0
    while cur.m:
        kept = cur.kept
        m = len(kept)
        local = cur.local_gains(joint)
        prio = local + rest[kept]
        if not shortlisting:
            bank += opts.step_tokens if opts.step_tokens is not None else math.inf
        fresh: set[int] = set()

        def spend(js: list[int]) -> float:
            before = sc.tokens
            for j, g in zip(js, rescore.gains(js)):
                fresh.add(j)
                prio[j] = g + tail[kept[j]]
                rest[kept[j]] = prio[j] - local[j]
                spread2[kept[j]] = 0.0
            return sc.tokens - before

        # the neighbours of the last deletion join the step's first round (one forward for both)
        near = {j for d in range(opts.neighbours) for j in (last - 1 - d, last + d) if 0 <= j < m} if last is not None else set()
        if shortlisting:  # every compared gain fresh: re-score the shortlist, delete its best
            by_prio = sorted(range(m), key=lambda j: (-prio[j], j))[: opts.shortlist]
            by_proposer: list[int] = []
            if proposer is not None and opts.shortlist:
                if proposed is None or len(order) % opts.propose_every == 0:
                    scores, ran = proposer(kept)
                    proposed, proposer_tokens = dict(zip(kept, np.asarray(scores, dtype=np.float64))), proposer_tokens + ran
                by_proposer = sorted(range(m), key=lambda j: (proposed[kept[j]], j))[: opts.shortlist]
            sampled = rng.choice(m, min(opts.sample, m), replace=False).tolist() if opts.sample else []
            # first come first: the proposer's and the priorities' first-to-delete alternately, the
            # neighbours after the first pair, then samples
            firsts = [j for pair in zip_longest(by_proposer, by_prio) for j in pair if j is not None]
            ranked = list(dict.fromkeys([*firsts[:2], *sorted(near), *firsts[2:], *sampled]))
            if opts.step_candidates is None:
                js = ranked
            else:  # the allowance: step_candidates re-scores of a whole suffix's average cost now
                # (windowed re-scores then buy more candidates); planned by estimate, charged what ran
                bank += opts.step_candidates * float(np.mean([whole.inputs(j) for j in range(m)]))
                js, planned = [], 0.0
                for j in ranked:
                    if planned + rescore.cost(j) > bank:
                        break
                    planned += rescore.cost(j)
                    js.append(j)
            if js:
                ran = spend(sorted(js))
                if opts.step_candidates is not None:
                    bank -= ran
                b = max(js, key=lambda j: (prio[j], -j))  # ties: lowest index
            else:  # nothing affordable this step: the proposer's first (else the highest priority)
                b = ranked[0]
        else:
            while True:
                ranked = sorted(range(m), key=lambda j: (-prio[j], j))
                hope = prio + np.sqrt(spread2[kept])  # optimistic priority (= prio for fresh candidates)
                stale = sorted((j for j in range(m) if j not in fresh), key=lambda j: (-hope[j], j))
                best_fresh = max((prio[j] for j in fresh), default=-math.inf)
                if not stale or (ranked[0] in fresh and hope[stale[0]] < best_fresh - opts.margin):
                    break
                todo = stale[: opts.batch] if stale and bank >= rescore.cost(stale[0]) else []
                if not todo:
                    break  # out of budget this step: take the highest priority as it stands
                # the neighbours come on top of the first round only when the allowance pays for them too
                extra = near - set(todo)
                if extra and bank >= sum(rescore.cost(j) for j in [*todo, *extra]):
                    todo = sorted(set(todo) | extra)
                near = set()
                bank -= spend(todo)
            b = min(range(m), key=lambda j: (-prio[j], j))  # ties: lowest index
        while b > 0 and cur.seq[b - 1] == cur.seq[b]:  # equal neighbours leave the same sequence: the lower one
            b -= 1
        order.append(kept[b])
        cur.recompute(kept[:b] + kept[b + 1:], b)
        trajectory.append(cur.objective(joint))
        if opts.drift:
            dist = np.abs(np.arange(m - 1) + (np.arange(m - 1) >= b) - b)  # old positions - b
            spread2[cur.kept] += (opts.drift / dist) ** 2
        last = b
    return GreedyResult(order, ranks_from_order(order, n), trajectory, full, time.perf_counter() - t0, lay,
                        lm_tokens=int(sc.tokens) + proposer_tokens)


def predictor_proposer(rank_predictor, chain) -> Callable[[list[int]], tuple[np.ndarray, int]]:
    """A shortlist proposer from a one-pass predictor (a `RankPredictor`, e.g. the shipped one): kept
    original indices -> (its scores of those tokens on the kept sequence, one forward; the LM tokens
    that forward ran, counted by a hook on the decoder stack). Duck-typed, so this module does not
    import the predictor stack (which imports it)."""
    base = getattr(rank_predictor.lm.model, rank_predictor.lm.model.base_model_prefix)

    def propose(kept: list[int]) -> tuple[np.ndarray, int]:
        ran = [0]

        def count(_mod, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            mask = kwargs.get("attention_mask")
            ran[0] += int(ids.numel() if mask is None else mask[:, -ids.shape[1]:].sum())

        handle = base.register_forward_pre_hook(count, with_kwargs=True)
        try:
            obs = rank_predictor.observe(chain, list(kept))
            scores = rank_predictor.scorer.score_many([obs])[0]
        finally:
            handle.remove()
        return np.asarray(scores, dtype=np.float64), ran[0]

    return propose
