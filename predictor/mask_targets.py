"""Random-deletion-mask targets: per-token importance from the exact objective of many random deletions.

The greedy labeler scores O(n^2) one-token deletions per chain. ContextCite (Cohen-Wang et al. 2024)
and AT2 ("Learning to Attribute with Attention") learn instead from a few dozen random ablations per
example: draw M keep-masks, compute the exact objective of each masked sequence, and fit a surrogate
that says how much keeping each token is worth. Here:

1. `draw_masks`: M keep-masks over the n reasoning tokens; mask m keeps exactly round(r_m * n) tokens
   (a uniformly random subset), with keep rates r_m stratified over [keep_min, keep_max] (one per
   stratum, jittered), seeded by the options' seed and the chain's key.
2. `masked_objectives`: the objective of every masked sequence `prompt + kept reasoning + answer`
   (the default layout, `predictor.layout`), JOINT = sum of log-probs of every token after the prompt
   (kept reasoning + answer) or ANSWER = answer tokens only (`predictor.objective`), computed as the
   greedy labeler scores a state (`greedy.candidates.CandidateScorer.step`): the prompt's KV cache once
   per chain, then the masks' suffixes as right-padded rows on top of it, log-probs only at the scored
   positions, summed in float64. Equals full forwards of each sequence (`objective.sequence_objective`)
   up to float round-off.
3. `per_token_targets`: a per-token target from (masks, objectives):
   "regression" (ContextCite's linear surrogate, ridge instead of lasso): y_m ~ b + sum_i w_i z_mi,
   fitted on centred data, w = (Zc'Zc + ridge I)^-1 Zc'yc; "difference": mean objective of the masks
   that keep token i minus the mean of those that delete it. Either way a target is in nats of
   objective per kept token: high = keeping the token helps the objective = deleted late by greedy.
   `target_ranks` turns targets into the package's rank convention (1 = deleted first).

`mask_targets(lm, chain, options)` does all three for one chain (`MaskTargets`). The targets are
noisy, cheap labels for pre-training or an auxiliary loss with a within-chain ranking/correlation
objective (issue 31); cost against the exact greedy search: `benchmarks/mask_targets_cost.py`.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .chains import ChainLike, as_chain
from .kv_cache import cache_kwargs, layer_kv, output_cache, prefix_cache
from .layout import Layout, encode_chain
from .lm import LM, base_and_head
from .objective import OBJECTIVES, sequence_objective, upcast

TARGETS = ("regression", "difference")


@dataclass(frozen=True)
class MaskTargetOptions:
    """How masks are drawn and targets derived (validated on construction; ValueError if invalid).

    masks: M, masks per chain (>= 2).
    keep_min, keep_max: range of keep rates, 0 < keep_min <= keep_max <= 1; mask m keeps
        round(r_m * n) tokens with r_m stratified over the range.
    seed: seed of the masks (with the chain's key, so chains get different masks).
    target: "regression" (ridge linear surrogate, ContextCite-style) or "difference" (mean objective
        when kept minus when deleted).
    ridge: L2 penalty of "regression" (>= 0; in squared mask units: Zc'Zc's diagonal is about
        M r (1 - r), ~5 for 32 masks at r = 0.7). 0 needs the centred masks to have full column rank.
    objective: "joint" or "answer" (`predictor.objective`).
    batch_tokens: padded token slots per forward (None: 1024 on CPU, 16384 on CUDA).
    """

    masks: int = 32
    keep_min: float = 0.4
    keep_max: float = 0.95
    seed: int = 0
    target: str = "regression"
    ridge: float = 1.0
    objective: str = "joint"
    batch_tokens: int | None = None

    def __post_init__(self):
        if isinstance(self.masks, bool) or not isinstance(self.masks, int) or self.masks < 2:
            raise ValueError(f"masks must be an integer >= 2, got {self.masks!r}")
        if not (0.0 < self.keep_min <= self.keep_max <= 1.0):
            raise ValueError(f"need 0 < keep_min <= keep_max <= 1, got {self.keep_min!r}, {self.keep_max!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r}; choose one of {', '.join(TARGETS)}")
        if not (isinstance(self.ridge, (int, float)) and math.isfinite(self.ridge) and self.ridge >= 0):
            raise ValueError(f"ridge must be a finite number >= 0, got {self.ridge!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        if self.batch_tokens is not None and (isinstance(self.batch_tokens, bool)
                                              or not isinstance(self.batch_tokens, int) or self.batch_tokens < 1):
            raise ValueError(f"batch_tokens must be None or an integer >= 1, got {self.batch_tokens!r}")


@dataclass
class MaskTargets:
    """Masks, their exact objectives and the per-token targets of one chain.

    masks: bool [M, n], True = reasoning token kept.
    keep_rates: float64 [M], the drawn rate r_m of each mask (mask m keeps round(r_m * n) tokens).
    objectives: float64 [M], the objective of each masked sequence, nats (log-probability, <= 0).
    full_objective: objective with every token kept, nats.
    targets: float64 [n], nats of objective per kept token (high = important = deleted late).
    intercept: float, the surrogate's objective with nothing kept ("regression"), or the mean
        objective over masks ("difference"), nats.
    lm_tokens: tokens run through the LM (prompt once + every row's inputs, padding excluded).
    seconds: wall time of the forwards and the fit.
    """

    masks: np.ndarray
    keep_rates: np.ndarray
    objectives: np.ndarray
    full_objective: float
    targets: np.ndarray
    intercept: float
    lm_tokens: int
    seconds: float

    @property
    def ranks(self) -> np.ndarray:
        """int [n]: `target_ranks(self.targets)` (1 = lowest target = deleted first)."""
        return target_ranks(self.targets)


def _rng(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "big")])


def draw_masks(n: int, options: MaskTargetOptions = MaskTargetOptions(), key: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(masks bool [M, n], keep rates float64 [M]) for a chain of n reasoning tokens.

    Rate r_m = keep_min + (keep_max - keep_min) * (m + u_m) / M with u_m ~ U[0, 1) (stratified), in a
    shuffled order; mask m keeps a uniformly random subset of round(r_m * n) tokens. Deterministic
    given (options.seed, key, n)."""
    if n < 1:
        raise ValueError(f"need at least one reasoning token, got n={n}")
    rng = _rng(options.seed, key)
    M = options.masks
    rates = options.keep_min + (options.keep_max - options.keep_min) * (np.arange(M) + rng.random(M)) / M
    rates = rates[rng.permutation(M)]
    masks = np.zeros((M, n), dtype=bool)
    for m, r in enumerate(rates):
        k = int(np.clip(np.rint(r * n), 0, n))
        masks[m, rng.permutation(n)[:k]] = True
    return masks, rates


def _sliding_window_too_short(lm: LM, lay: Layout) -> bool:
    window = getattr(lm.model.config.get_text_config(), "sliding_window", None)
    return bool(window) and lay.total > int(window)


@torch.no_grad()
def masked_objectives(lm: LM, lay: Layout, masks: np.ndarray, objective: str = "joint",
                      batch_tokens: int | None = None) -> tuple[np.ndarray, int]:
    """(objectives float64 [M] in nats, LM tokens run) of the sequences prompt + reasoning[mask] + answer.

    The prompt runs once (its KV cache is shared); each mask's kept reasoning + answer is one
    right-padded row on top of it, in blocks of at most `batch_tokens` padded slots. Sliding-window
    models on sequences longer than their window are scored by full forwards instead (as greedy does)."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 2 or masks.shape[1] != lay.n:
        raise ValueError(f"masks must be [M, {lay.n}], got shape {masks.shape}")
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    p, a = len(lay.prompt_ids), len(lay.answer_ids)
    kepts = [np.flatnonzero(row).tolist() for row in masks]
    if _sliding_window_too_short(lm, lay):
        vals = [sequence_objective(lm.model, lay.sequence(k), p, a, objective) for k in kepts]
        return np.asarray(vals, dtype=np.float64), sum(p + len(k) + a for k in kepts)
    dev = lm.device
    base, head, cap = base_and_head(lm.model)

    def logprobs(h: torch.Tensor) -> torch.Tensor:
        logits = upcast(head(h))
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return torch.log_softmax(logits, dim=-1)

    out = base(input_ids=torch.tensor([lay.prompt_ids], device=dev), use_cache=True)
    prompt_kv = layer_kv(output_cache(out))
    prompt_last_lp = logprobs(out.last_hidden_state[0, -1:])[0]  # [V]: predicts the first token after the prompt
    tokens = p
    budget = batch_tokens or (16384 if dev.type == "cuda" else 1024)
    seqs = [[lay.reasoning_ids[i] for i in k] + lay.answer_ids for k in kepts]
    values = np.zeros(len(seqs), dtype=np.float64)
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))  # similar lengths pad less
    s = 0
    while s < len(order):
        e = s + 1
        while e < len(order) and (e - s + 1) * (len(seqs[order[e]]) - 1) <= budget:
            e += 1
        block = order[s:e]
        L = max(1, max(len(seqs[i]) for i in block) - 1)  # inputs: every token but the last
        B = len(block)
        ids = torch.zeros(B, L, dtype=torch.long, device=dev)
        tgt = torch.zeros(B, L, dtype=torch.long, device=dev)
        use = torch.zeros(B, L, dtype=torch.bool, device=dev)
        mask = torch.zeros(B, p + L, dtype=torch.long, device=dev)
        mask[:, :p] = 1
        first = np.zeros(B)
        for b, i in enumerate(block):
            seq, m = seqs[i], len(kepts[i])
            ln = len(seq) - 1
            if ln:
                ids[b, :ln] = torch.tensor(seq[:-1])
                tgt[b, :ln] = torch.tensor(seq[1:])
                mask[b, p:p + ln] = 1
                # output t predicts seq[t + 1]; answer tokens are seq[m:], predicted by outputs m-1..
                use[b, (0 if objective == "joint" else max(0, m - 1)):ln] = True
            scored_first = objective == "joint" or m == 0
            first[b] = float(prompt_last_lp[seq[0]].double()) if scored_first else 0.0
        pos = (p + torch.arange(L, device=dev))[None].expand(B, -1)
        res = base(input_ids=ids, position_ids=pos, attention_mask=mask, use_cache=True,
                   **cache_kwargs(base, prefix_cache(prompt_kv, p, B)))
        h = res.last_hidden_state
        hs, ts = h[use], tgt[use]
        # log p(target) in chunks of 512 positions (never all positions x vocabulary at once)
        lp = [logprobs(hs[c:c + 512]).gather(1, ts[c:c + 512, None])[:, 0] for c in range(0, hs.shape[0], 512)]
        lp = torch.cat(lp) if lp else h.new_zeros(0)
        per_row = torch.zeros(B, dtype=torch.float64, device=dev).index_add_(0, use.nonzero()[:, 0], lp.double())
        values[block] = first + per_row.cpu().numpy()
        tokens += int(mask[:, p:].sum())
        s = e
    return values, tokens


def per_token_targets(masks: np.ndarray, values: np.ndarray, target: str = "regression",
                      ridge: float = 1.0) -> tuple[np.ndarray, float]:
    """(targets float64 [n], intercept) from masks bool [M, n] and objectives float64 [M] (nats).

    "regression": w = (Zc'Zc + ridge I)^-1 Zc'yc on the centred masks Zc and objectives yc; intercept
    = mean(y) - mean(Z) . w (the surrogate with nothing kept). "difference": mean(y | z_i = 1) -
    mean(y | z_i = 0), 0 for a token kept by every mask or by none; intercept = mean(y)."""
    Z = np.asarray(masks, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if Z.ndim != 2 or y.shape != (Z.shape[0],):
        raise ValueError(f"need masks [M, n] and values [M], got {Z.shape} and {y.shape}")
    if target == "regression":
        zm, ym = Z.mean(0), y.mean()
        Zc, yc = Z - zm, y - ym
        w = np.linalg.solve(Zc.T @ Zc + ridge * np.eye(Z.shape[1]), Zc.T @ yc)
        return w, float(ym - zm @ w)
    if target == "difference":
        kept = Z.sum(0)
        deleted = Z.shape[0] - kept
        with np.errstate(invalid="ignore", divide="ignore"):
            d = (Z.T @ y) / kept - ((1 - Z).T @ y) / deleted
        return np.where((kept > 0) & (deleted > 0), d, 0.0), float(y.mean())
    raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")


def target_ranks(targets: np.ndarray) -> np.ndarray:
    """int [n] ranks in the package's convention (1 = deleted first): ascending target, ties to the
    lower index (as greedy breaks ties)."""
    t = np.asarray(targets, dtype=np.float64)
    order = np.lexsort((np.arange(t.size), t))
    ranks = np.empty(t.size, dtype=np.int64)
    ranks[order] = np.arange(1, t.size + 1)
    return ranks


@torch.no_grad()
def mask_targets(lm: LM, chain: ChainLike, options: MaskTargetOptions = MaskTargetOptions()) -> MaskTargets:
    """Draw masks for one chain, compute every masked objective and the full one, fit the targets.

    The chain's id (or, without one, its content) keys the masks, so a chain gets the same masks
    in every run and different chains get different ones."""
    t0 = time.perf_counter()
    c = as_chain(chain)
    lay = encode_chain(lm.tokenizer, c, lm.max_length)
    masks, rates = draw_masks(lay.n, options, c.id or c.content_hash)
    rows = np.vstack([masks, np.ones((1, lay.n), dtype=bool)])  # + the full chain, in the same blocks
    values, tokens = masked_objectives(lm, lay, rows, options.objective, options.batch_tokens)
    targets, intercept = per_token_targets(masks, values[:-1], options.target, options.ridge)
    return MaskTargets(masks, rates, values[:-1], float(values[-1]), targets, intercept, tokens,
                       time.perf_counter() - t0)
