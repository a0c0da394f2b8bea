"""Every candidate deletion's gain at once, estimated from one forward and one backward pass.

Attribution patching (Nanda 2023; AtP, Kramar et al. 2024, arXiv 2403.00745) applied to token
deletion. Deleting kept reasoning token j from prompt + kept + answer changes the objective by
  - a local part, exact from the current sequence alone: minus its own log-prob term (JOINT) and
    the change of the next token's log-prob, which the unchanged prefix now predicts; and
  - the rest: the change of every later target's log-prob, since no later position sees token j.
The rest is what the exact search pays a whole-suffix forward per candidate for. Here it is
estimated for every j at once: removing key j from the context of every strictly later query is the
deletion up to the one-position RoPE shift of the later tokens. In one layer that turns query q's
attention output into (out_q - P_qj v_j) / (1 - P_qj); one forward records every layer's attention
probabilities P, outputs and values, one backward gives G = dJ/d(attention output) per layer, and the
rest is estimated as the sum over layers, heads and later queries of <G_q, change of out_q>:
  - `qk_fix=True` (default; AtP*'s fix for saturated attention): the per-layer change exact,
    P_qj / (1 - P_qj) (out_q - v_j);
  - `qk_fix=False`: its linearization P_qj (out_q - v_j), which is minus the gradient of J with
    respect to a log-gate on key j (plain attribution patching).
Layers interact only to first order (tested: exact when the attention outputs are small).

Cost: one forward of the kept reasoning + answer over the prompt's cached KV, plus its backward
(counted as two forwards' tokens), against about m (m/2 + a) tokens to re-score every candidate
exactly. Measured (docs/approximate_greedy.md, "Which proposer holds greedy's next deletion"): it puts
greedy's next deletion among its 4 first slightly more often than the free local part alone (+0.06 on
short validation chains, a tie on long ones) and, as a search's proposer, did not pay for its backward.
sdpa-style models only: a model whose attention uses a logit soft cap, or a sliding window shorter than
the sequence, raises ValueError.
"""
from __future__ import annotations

import contextvars
from collections.abc import Callable

import numpy as np
import torch

from ..attention_impl import attention_implementation, context_value
from ..kv_cache import cache_kwargs, prefix_cache
from ..layout import Layout
from ..lm import LM
from ..objective import check_objective
from .candidates import CandidateScorer, local_gains

IMPLEMENTATION = "predictor_attribution"  # the attention implementation name registered with transformers
BACKWARD_FORWARDS = 2  # a backward pass counted as this many forwards' LM tokens

# per layer, in call order, while a recorded forward runs: (probs [H, T, S], output [H, T, hd], values
# [H, S, hd], zero probe added to the output whose gradient is dJ/d output)
_RECORD: contextvars.ContextVar[list | None] = contextvars.ContextVar("attribution_record", default=None)


def attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask,
              scaling: float | None = None, dropout: float = 0.0, **kwargs):
    """transformers attention function: causal attention computed explicitly, recording each layer's
    probabilities, output and values, and adding a zero probe to the output (its gradient is the
    objective's gradient with respect to the output). query [1, H, T, hd], key/value [1, kvh, S, hd]
    (S - T cached positions first) -> ([1, T, H, hd], None). Plain sdpa outside `recording`."""
    record = _RECORD.get()
    if record is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    t, s, h = query.shape[2], key.shape[2], query.shape[1]
    window = kwargs.get("sliding_window") or getattr(module, "sliding_window", None)
    if window and s > window:
        raise ValueError(f"attribution patching needs full attention; this layer's window ({window}) is shorter "
                         f"than the sequence ({s})")
    g = h // key.shape[1]
    k, v = key[0].repeat_interleave(g, 0), value[0].repeat_interleave(g, 0)  # [H, S, hd]
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    logits = (query[0] @ k.transpose(1, 2)).to(torch.promote_types(query.dtype, torch.float32)) * scale  # [H, T, S]
    later = torch.arange(s, device=query.device)[None] > torch.arange(s - t, s, device=query.device)[:, None]
    probs = torch.softmax(logits.masked_fill(later, float("-inf")), dim=-1).to(v.dtype)
    out = probs @ v  # [H, T, hd]
    probe = torch.zeros_like(out, requires_grad=True)
    record.append((probs.detach(), out.detach(), v.detach(), probe))
    return (out + probe).transpose(0, 1)[None].contiguous(), None


def recording(record: list):
    """Within the block, forwards under `attention` append one entry per layer to `record`; a context manager."""
    return context_value(_RECORD, record)


def key_removal_effects(probs: torch.Tensor, out: torch.Tensor, values: torch.Tensor, grad: torch.Tensor,
                        keys: slice, qk_fix: bool = True) -> torch.Tensor:
    """First-order change of the objective when one layer's queries stop attending to key k, for each k
    in `keys`, from probs [H, T, S], out [H, T, hd], values [H, S, hd] and grad = dJ/d out [H, T, hd]
    (the last T of S positions are queries). Removing key k turns query q's output into
    (out_q - P_qk v_k) / (1 - P_qk), a change P_qk / (1 - P_qk) (out_q - v_k): exact per layer with
    `qk_fix` (AtP*'s fix for saturated attention), its linearization P_qk (out_q - v_k) without.
    Only strictly later queries count (a token's own query position is the next token's predictor)."""
    s, t = probs.shape[2], probs.shape[1]
    p = probs[:, :, keys].double()  # [H, T, K]
    pos = torch.arange(s, device=probs.device)[keys]
    later = pos[None] < torch.arange(s - t, s, device=probs.device)[:, None]  # [T, K]
    w = torch.where(later[None], p / (1 - p).clamp_min(1e-6) if qk_fix else p, torch.zeros((), dtype=p.dtype))
    c = (grad.double() * out.double()).sum(-1)  # [H, T]: <G_q, out_q>
    gv = grad.double() @ values[:, keys].double().transpose(1, 2)  # [H, T, K]: <G_q, v_k>
    return (w * (c[:, :, None] - gv)).sum((0, 1))


class DeletionGainEstimator:
    """Per chain: the prompt's KV (one forward) and `estimate(kept)`, the estimated gain of deleting each
    kept token (objective after deletion minus now, nats) from one recorded forward + backward.

    qk_fix: each layer's attention change exact (AtP*), else its linearization (the gradient of a gate
    on the key). Raises ValueError for a model with an attention logit soft cap."""

    def __init__(self, lm: LM, lay: Layout, objective: str = "joint", qk_fix: bool = True):
        check_objective(objective)
        if getattr(lm.model.config.get_text_config(), "attn_logit_softcapping", None):
            raise ValueError("attribution patching does not model attention logit soft caps")
        self.model, self.lay, self.dev, self.qk_fix = lm.model, lay, lm.device, qk_fix
        self.joint = objective == "joint"
        # the candidate scorer's per-chain state: decoder stack, head, the prompt's KV and last log-probs
        # (built without a graph: the backward must stop at the cached prompt)
        with torch.no_grad():
            self.sc = CandidateScorer(lm, lay, objective, None)

    @property
    def tokens(self) -> int:
        """LM token equivalents run (the prompt once; a backward counts BACKWARD_FORWARDS x its tokens)."""
        return self.sc.tokens

    def estimate(self, kept: list[int]) -> np.ndarray:
        """gain[j] ~ objective after deleting kept[j] minus the current objective [len(kept)] (float64):
        the exact local part + the first-order rest (module doc)."""
        return self.estimate_parts(kept)[0]

    def estimate_parts(self, kept: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(estimated gains, their exact local parts), each [len(kept)] float64."""
        lay, sc, m = self.lay, self.sc, len(kept)
        p = sc.p
        if m == 0:
            return np.zeros(0), np.zeros(0)
        seq = [lay.reasoning_ids[i] for i in kept] + lay.answer_ids
        x = seq[:-1]
        record: list = []
        with torch.enable_grad(), attention_implementation(self.model, IMPLEMENTATION, attention), recording(record):
            out = sc.base(input_ids=torch.tensor([x], device=self.dev),
                          position_ids=torch.arange(p, p + len(x), device=self.dev)[None], use_cache=True,
                          **cache_kwargs(sc.base, prefix_cache(sc.prompt_kv, p, 1)))
            lp = sc._logprobs(out.last_hidden_state[0])  # lp[t]: after prompt + seq[:t+1]
            tok = lp.gather(1, torch.tensor(seq[1:], device=self.dev)[:, None])[:, 0]  # log p(seq[t+1])
            scored = tok if self.joint else tok[m - 1:]
            grads = torch.autograd.grad(scored.sum(), [r[3] for r in record])
        sc.tokens += len(x) * (1 + BACKWARD_FORWARDS)
        with torch.no_grad():
            keys = slice(p, p + m)
            rest = sum(key_removal_effects(pr, o, v, gr, keys, self.qk_fix) for (pr, o, v, _), gr in zip(record, grads))
            tok_lp = torch.cat([sc.prompt_last_lp[seq[0]][None], tok])  # log p(seq[t])
            rows = torch.cat([sc.prompt_last_lp[None], lp[: m - 1]])  # rows[j]: after prompt + seq[:j]
            local = local_gains(seq, m, tok_lp, rows, self.joint)
        return local + rest.cpu().numpy(), local


def attribution_proposer(lm: LM, lay: Layout, objective: str = "joint",
                         qk_fix: bool = True) -> Callable[[list[int]], tuple[np.ndarray, int]]:
    """A shortlist proposer (`approximate.approximate_greedy_layout(..., proposer=)`) from attribution
    patching: kept original indices -> (scores, higher = pruned later, i.e. minus the estimated gains;
    LM token equivalents run, the backward counted as BACKWARD_FORWARDS forwards)."""
    est = DeletionGainEstimator(lm, lay, objective, qk_fix)
    charged = [0]  # tokens already reported (the prompt's forward goes to the first call)

    def propose(kept: list[int]) -> tuple[np.ndarray, int]:
        gains = est.estimate(list(kept))
        ran, charged[0] = est.tokens - charged[0], est.tokens
        return -gains, ran

    return propose
