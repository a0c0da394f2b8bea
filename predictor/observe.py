"""One forward pass per chain -> an `Observation` that serves every scorer and the feature extractor.

The pass runs over prompt + full reasoning + answer + an appended end-of-reasoning probe
("Think Clearly"-style, Choi et al. 2025). Attention is causal, so the probe changes nothing at the
earlier positions. Attention maps are reduced inside per-layer forward hooks to [heads, n]
statistics over the n reasoning keys, so at most one layer's T x T map exists at a time. Eager
attention (the only implementation that returns weights) is switched on just for this pass.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .chains import Chain, ChainLike, as_chain
from .layout import Layout, ProbeTooLongError, chain_name, encode_chain
from .lm import LM, base_and_head
from .objective import upcast

DEFAULT_PROBE = "\n\nTime is up. I should stop thinking and now summarize the final answer."
LOGIT_CHUNK = 1 << 20  # logits per lm-head chunk (rows x vocab): bounds the [rows, vocab] buffers to ~4 MiB
WINDOW = 8  # SnapKV observation window: the last queries of the scored sequence

# Attention statistics, each [layers, heads, n] over the n reasoning keys (see `_reduce`).
ATTENTION_STATS = (
    "answer_mean",   # mean attention from the answer tokens
    "later_mean",    # mean attention from later reasoning tokens (0 for the last one)
    "later_max",     # max attention from later reasoning tokens (0 for the last one)
    "last",          # attention from the final position of the scored sequence
    "probe_mean",    # mean attention from the appended end-of-reasoning probe
    "received_sum",  # total attention received from every later scored query (H2O's accumulated score)
    "window_mean",   # mean attention from the last WINDOW queries of the scored sequence (SnapKV)
)


@dataclass
class Observation:
    """What one forward pass tells about one chain's n reasoning tokens.

    attn[stat]: float32 [layers, heads, n] (ATTENTION_STATS), empty when observed without attention.
    hidden[l]: float32 [n, d_model], the residual stream at each reasoning token after decoder layer l
    (1-based; l = num_layers is the final, normed output), for the layers asked for (else empty).
    logprob/entropy/token_rank: float32 [n]: log p(token | prefix), predictive entropy (nats) at the
    token's position, and the token's rank under that prediction (1 = argmax).
    """

    chain: Chain
    layout: Layout
    logprob: np.ndarray
    entropy: np.ndarray
    token_rank: np.ndarray
    attn: dict[str, np.ndarray] = field(default_factory=dict)
    hidden: dict[int, np.ndarray] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lm: LM | None = field(default=None, repr=False, compare=False)

    @property
    def n(self) -> int:
        return self.layout.n

    @property
    def surprisal(self) -> np.ndarray:
        return -self.logprob


def attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The self-attention module of every decoder layer, in depth order."""
    base, _, _ = base_and_head(model)
    layers = getattr(base, "layers", None) or getattr(base, "h", None)
    if layers is not None:
        mods = [getattr(l, "self_attn", None) or getattr(l, "attn", None) for l in layers]
        if all(m is not None for m in mods):
            return mods
    mods = [m for name, m in model.named_modules() if name.endswith(("self_attn", ".attn"))]
    if not mods:
        raise RuntimeError(f"cannot find attention modules in {type(model).__name__}")
    return mods


def layers_at_depths(num_layers: int, depths: tuple[float, ...]) -> tuple[int, ...]:
    """1-based decoder layers nearest to relative depths in (0, 1] (1.0 = the last layer), sorted, unique."""
    return tuple(sorted({min(num_layers, max(1, round(float(d) * num_layers))) for d in depths}))


@contextlib.contextmanager
def eager_attention(model: torch.nn.Module):
    """Temporarily switch to eager attention (the only one that returns weights)."""
    old = model.config._attn_implementation
    if old != "eager":
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if old != "eager":
            model.set_attn_implementation(old)


def _reduce(w: torch.Tensor, p: int, n: int, t_scored: int, window: int) -> dict[str, torch.Tensor]:
    """Reduce one layer's attention weights w [heads, T, T] to ATTENTION_STATS, each [heads, n]."""
    keys = slice(p, p + n)
    rr = w[:, p:p + n, keys]  # reasoning queries x reasoning keys
    later = torch.tril(torch.ones(n, n, dtype=torch.bool, device=w.device), -1)  # query q > key k
    cnt = later.sum(0).clamp(min=1)
    scored = w[:, p:t_scored, keys]  # every scored query (reasoning + answer) -> reasoning keys
    return {
        "answer_mean": w[:, p + n:t_scored, keys].mean(1),
        "later_mean": (rr * later).sum(1) / cnt,
        "later_max": rr.masked_fill(~later, 0).amax(1),
        "last": w[:, t_scored - 1, keys],
        "probe_mean": w[:, t_scored:, keys].mean(1) if w.shape[1] > t_scored else torch.zeros_like(w[:, 0, keys]),
        "received_sum": scored.sum(1),  # causal: queries before a key give it 0
        "window_mean": w[:, max(p, t_scored - window):t_scored, keys].mean(1),
    }


@torch.no_grad()
def observe(lm: LM, chain: ChainLike, attention: bool = True, probe: str | None = DEFAULT_PROBE,
            window: int = WINDOW, kept: list[int] | None = None,
            hidden_layers: tuple[int, ...] = (), hidden_depths: tuple[float, ...] = (),
            forward: bool = True) -> Observation:
    """Run one forward pass over a chain (default layout + probe) and collect what scorers need.

    kept: observe only these reasoning token indices (sorted), e.g. the survivors of a partial
    pruning; the observation's n is then len(kept) and its rows follow `kept`.
    hidden_layers: 1-based decoder layers whose residual stream at the reasoning tokens to keep
    (`Observation.hidden`); raises ValueError outside 1..num_layers. hidden_depths: the same as
    relative depths in (0, 1] (`layers_at_depths`), added to hidden_layers.
    forward=False: no LM pass at all, only the layout and tokens (logprob/entropy/token_rank are NaN),
    for scorers that run a model of their own (e.g. a fine-tuned LM scorer).
    Raises ChainError for an unscorable chain, and ProbeTooLongError when the chain fits the context
    but the probe (with attention) does not: pass probe=None when no probe statistic is read.
    """
    t0 = time.perf_counter()
    chain = as_chain(chain)
    lay = encode_chain(lm.tokenizer, chain, lm.max_length)
    if kept is not None:
        if not kept or sorted(set(kept)) != list(kept) or kept[0] < 0 or kept[-1] >= lay.n:
            raise ValueError(f"kept must be sorted unique indices in [0, {lay.n}), got {kept!r:.80}")
        lay = Layout(lay.prompt_ids, [lay.reasoning_ids[i] for i in kept], lay.answer_ids)
    if not forward:
        nan = np.full(lay.n, np.nan, dtype=np.float32)
        return Observation(chain=chain, layout=lay, logprob=nan, entropy=nan.copy(), token_rank=nan.copy(),
                           tokens=[lm.tokenizer.decode([t]) for t in lay.reasoning_ids],
                           seconds=time.perf_counter() - t0, lm=lm)
    probe_ids = list(lm.tokenizer(probe, add_special_tokens=False)["input_ids"]) if (probe and attention) else []
    ids = lay.sequence() + probe_ids
    if len(ids) > lm.max_length:  # never score with silently empty probe statistics
        raise ProbeTooLongError(f"{chain_name(chain)}: {lay.total} tokens + the {len(probe_ids)}-token probe exceed "
                                f"the LM's context of {lm.max_length}; the probe features need the probe")
    p, n, t_scored = len(lay.prompt_ids), lay.n, lay.total
    base, head, cap = base_and_head(lm.model)
    stats: list[dict[str, torch.Tensor]] = []

    def hook(_mod, _inp, out):
        w = out[1]
        if w is None:
            raise RuntimeError("attention weights not returned; the model ignores eager attention")
        # copy=True: a stat that is a view (e.g. "last") would otherwise keep this layer's whole T x T map alive
        stats.append({k: v.to("cpu", torch.float32, copy=True) for k, v in _reduce(w[0], p, n, t_scored, window).items()})
        return (out[0], None) + tuple(out[2:])  # drop the T x T map right away

    hidden_layers = tuple(sorted(set(hidden_layers) | set(layers_at_depths(lm.num_layers, hidden_depths))))
    bad = [l for l in hidden_layers if not 1 <= l <= lm.num_layers]
    if bad:
        raise ValueError(f"hidden_layers {bad} outside 1..{lm.num_layers}")
    x = torch.tensor([ids], device=lm.device)
    want_hidden = bool(hidden_layers)
    if attention:
        handles = [m.register_forward_hook(hook) for m in attention_modules(lm.model)]
        try:
            with eager_attention(lm.model):
                out = base(input_ids=x, use_cache=False, output_hidden_states=want_hidden)
        finally:
            for hd in handles:
                hd.remove()
    else:
        out = base(input_ids=x, use_cache=False, output_hidden_states=want_hidden)
    h = out.last_hidden_state[0]
    hidden = {l: out.hidden_states[l][0, p:p + n].to("cpu", torch.float32).numpy() for l in hidden_layers}
    del out
    tgt = torch.tensor(lay.reasoning_ids, device=lm.device)
    parts, rows = [], max(1, LOGIT_CHUNK // head.out_features if hasattr(head, "out_features") else 64)
    for a in range(0, n, rows):  # chunks: a [n, vocab] tensor and its copies would dwarf the forward itself
        logits = upcast(head(h[p - 1 + a:p - 1 + min(n, a + rows)]))  # rows predicting reasoning tokens
        if cap:
            logits = torch.tanh(logits / cap) * cap
        lp = torch.log_softmax(logits, dim=-1)
        del logits
        t_lp = lp.gather(1, tgt[a:a + len(lp), None])[:, 0]
        ent = -lp.exp().mul_(lp).sum(-1)
        parts.append((t_lp, ent, (lp > t_lp[:, None]).sum(-1) + 1))
    tok_lp, entropy, rank = (torch.cat(x) for x in zip(*parts))
    attn = {k: torch.stack([s[k] for s in stats]).numpy() for k in ATTENTION_STATS} if attention else {}
    return Observation(
        chain=chain, layout=lay, logprob=tok_lp.float().cpu().numpy(), entropy=entropy.float().cpu().numpy(),
        token_rank=rank.cpu().numpy().astype(np.float32), attn=attn, hidden=hidden,
        tokens=[lm.tokenizer.decode([t]) for t in lay.reasoning_ids], seconds=time.perf_counter() - t0, lm=lm,
    )


def observe_many(lm: LM, chains: ChainLike | list[ChainLike], **kw) -> list[Observation]:
    """`observe` for each chain (one chain or a list)."""
    from .chains import as_chain_list

    return [observe(lm, c, **kw) for c in as_chain_list(chains)[0]]
