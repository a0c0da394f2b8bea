"""Value-norm-weighted and multi-hop attention statistics over a chain's reasoning tokens (issue 31).

Raw attention says where a query looks, not what it takes: a key whose value vector the output
projection maps to almost nothing contributes almost nothing however much it is attended
(Kobayashi et al. 2020, "Attention is not only a weight"; KVzap's oracle weights attention by
||W_o v|| / ||h||). And the answer often reads a reasoning token only through later reasoning
tokens that read it (FlashTrace, attention rollout). Per layer l, head h, query i, reasoning key j,
with A the attention weights, v_j the key's value vector (its grouped-query KV head), W_o^h head h's
slice of the output projection and x_i the residual stream entering layer l at the query:

    FLOW_STATS, each float32 [layers, heads, n]:
    vnorm         ||W_o^h v_j||
    vn_answer     mean over answer queries i of A[h,i,j] ||W_o^h v_j|| / ||x_i||
    vn_later      the same over later reasoning queries i > j (0 for the last token)
    vn_later_max  the max over later reasoning queries
    MULTIHOP_STATS (head-mean attention; u_l = answer -> reasoning [n], R_l = reasoning -> reasoning
    [n, n] restricted to the chain, S_l its strictly lower part, i.e. queries after the key):
    hop2          [layers, n]  u_l S_l: answer -> later reasoning -> this token, within layer l
    hop2_bins     [pairs, n]   mean u over the layers of depth bin b2 times mean S over bin b1 <= b2
                               (FLOW_BINS bins; pairs in `bin_pairs` order): answer at depth b2 reads
                               reasoning whose input at depth b1 read this token
    rollout       [1, n]       sum over l of u_l Ah_{l-1} ... Ah_1 / L, Ah_m = (I + R_m) / 2: attention
                               rollout (Abnar & Zuidema 2020) from the answer, restricted to the chain
    rollout_last  [1, n]       the same from the last layer's answer attention only

`flow_attention(model, modules, layers, spans)` collects them during a forward pass of any HF model
whose attention goes through transformers' attention interface (Llama-style, Gemma 3; sdpa, eager
or `attention_stats`' chunked implementation): for its duration the model runs a wrapper that reads
the layer's queries, keys and values (after RoPE and q/k norms), computes the statistics and then
calls the implementation that was active, so the model's output is unchanged. The weights are
recomputed for the reasoning and answer queries a block at a time (`CHUNK_ELEMENTS`), and R_l is
kept per layer until the pass ends ([layers, n, n] per chain).
"""
from __future__ import annotations

import contextlib
import contextvars
import sys
from dataclasses import dataclass, field

import torch

from .attention_stats import CHUNK_ELEMENTS, Span, per_chain

FLOW_STATS = ("vnorm", "vn_answer", "vn_later", "vn_later_max")
MULTIHOP_STATS = ("hop2", "hop2_bins", "rollout", "rollout_last")
FLOW_BINS = 4
_PREFIX = "predictor_flow+"
_registered: set[str] = set()


def bin_pairs(bins: int = FLOW_BINS) -> list[tuple[int, int]]:
    """(b1, b2) depth-bin pairs of `hop2_bins`, b1 <= b2 (reasoning hop at b1, answer hop at b2)."""
    return [(b1, b2) for b2 in range(bins) for b1 in range(b2 + 1)]


def depth_bins(L: int, bins: int = FLOW_BINS) -> list[list[int]]:
    """Layers of each relative-depth bin; a bin without layers borrows the nearest one (L < bins)."""
    out = []
    for d in range(bins):
        ls = [l for l in range(L) if l * bins // L == d]
        out.append(ls or [min(L - 1, int((d + 0.5) * L / bins))])
    return out


def value_norms(v: torch.Tensor, o_weight: torch.Tensor, heads: int) -> torch.Tensor:
    """||W_o^h v_j|| [H, n] for values v [Hkv, n, d] and the output projection weight [D, H * d]."""
    Hkv, _, d = v.shape
    w = o_weight.to(v.dtype).reshape(-1, heads, d).transpose(0, 1)  # [H, D, d]
    gram = w.transpose(1, 2) @ w  # [H, d, d]
    vh = v.repeat_interleave(heads // Hkv, 0)  # [H, n, d]
    return torch.einsum("hnd,hde,hne->hn", vh, gram, vh).clamp(min=0).sqrt()


def layer_flow(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o_weight: torch.Tensor, x_norm: torch.Tensor,
               span: Span, scaling: float | None = None, mask: torch.Tensor | None = None,
               sliding_window: int | None = None, softcap: float | None = None,
               chunk_elements: int | None = None) -> dict[str, torch.Tensor]:
    """One layer's statistics for one chain: FLOW_STATS [H, n], "answer" [n] and "rr" [n, n] (head means
    of answer -> reasoning and reasoning -> reasoning attention).

    q [H, T, d], k and v [Hkv, T, d] as the attention function gets them; x_norm [T] the residual norm
    entering the layer; mask: None (causal, plus sliding_window) or the layer's mask [1|H, T, T], bool
    (True = attend) or additive. Float64 inputs compute in float64, others in float32."""
    p, n, t = span.p, span.n, span.scored
    H, Hkv, d = q.shape[0], k.shape[0], q.shape[-1]
    dt = torch.float64 if q.dtype == torch.float64 else torch.float32
    dev = q.device
    scale = scaling if scaling is not None else d ** -0.5
    kk = k[:, :t].to(dt).repeat_interleave(H // Hkv, 0)  # [H, t, d]
    vn = value_norms(v[:, p:p + n].to(dt), o_weight, H)  # [H, n]
    inv = 1.0 / x_norm[p:t].to(dt).clamp(min=1e-12)
    acc = {s: torch.zeros(H, n, dtype=dt, device=dev) for s in ("vn_answer", "vn_later", "vn_later_max")}
    answer = torch.zeros(n, dtype=dt, device=dev)
    rr = torch.zeros(n, n, dtype=dt, device=dev)
    idx = torch.arange(t, device=dev)
    rows = max(1, (chunk_elements or CHUNK_ELEMENTS) // max(1, H * t))
    for q0 in range(p, t, rows):
        q1 = min(t, q0 + rows)
        s = (q[:, q0:q1].to(dt) * scale) @ kk[:, :q1].transpose(1, 2)  # [H, c, q1]
        if softcap:
            s = torch.tanh(s / softcap) * softcap
        qi = idx[q0:q1, None]
        hidden = idx[None, :q1] > qi
        if sliding_window:
            hidden = hidden | (idx[None, :q1] <= qi - sliding_window)
        if mask is not None:
            m = mask[:, q0:q1, :q1]
            s = s.masked_fill(~m, float("-inf")) if m.dtype == torch.bool else s + m.to(dt)
        else:
            s = s.masked_fill(hidden, float("-inf"))
        w = torch.softmax(s, dim=-1)[:, :, p:p + n]  # [H, c, n]: block queries -> reasoning keys
        del s
        wv = w * vn[:, None, :] * inv[q0 - p:q1 - p][None, :, None]
        a0 = max(q0, p + n)  # answer rows of the block
        if a0 < q1:
            acc["vn_answer"] += wv[:, a0 - q0:].sum(1)
            answer += w[:, a0 - q0:].mean(0).sum(0)
        r1 = min(q1, p + n)  # reasoning rows of the block
        if q0 < r1:
            rr[q0 - p:r1 - p] = w[:, :r1 - q0].mean(0)
            later = (idx[q0:r1, None] > idx[None, p:p + n])  # query after key
            blk = wv[:, :r1 - q0].masked_fill(~later, 0)
            acc["vn_later"] += blk.sum(1)
            acc["vn_later_max"] = torch.maximum(acc["vn_later_max"], blk.amax(1))
    n_ans = max(1, t - p - n)
    cnt = (n - 1 - torch.arange(n, device=dev)).clamp(min=1).to(dt)
    return {"vnorm": vn, "vn_answer": acc["vn_answer"] / n_ans, "vn_later": acc["vn_later"] / cnt,
            "vn_later_max": acc["vn_later_max"], "answer": answer / n_ans, "rr": rr}


def multihop(answer: torch.Tensor, rr: torch.Tensor, bins: int = FLOW_BINS) -> dict[str, torch.Tensor]:
    """MULTIHOP_STATS of one chain from the per-layer head means answer [L, n] and rr [L, n, n]."""
    L, n = answer.shape
    strict = torch.tril(rr, -1)
    hop2 = torch.einsum("li,lij->lj", answer, strict)
    groups = depth_bins(L, bins)
    u_bin = torch.stack([answer[ls].mean(0) for ls in groups])
    s_bin = torch.stack([strict[ls].mean(0) for ls in groups])
    hop2_bins = torch.stack([u_bin[b2] @ s_bin[b1] for b1, b2 in bin_pairs(bins)])
    eye = torch.eye(n, dtype=rr.dtype, device=rr.device)
    g = answer[L - 1]
    last = answer[L - 1]
    for l in range(L - 2, -1, -1):  # Horner: g = u_l + g (I + R_l) / 2, from the top layer down
        hat = (eye + rr[l]) / 2
        g = answer[l] + g @ hat
        last = last @ hat
    return {"hop2": hop2, "hop2_bins": hop2_bins, "rollout": (g / L)[None], "rollout_last": last[None]}


@dataclass
class _Capture:
    layer_of: dict[int, int]  # attention module id -> layer index
    spans: list[Span | None]
    inner: str  # the attention implementation the wrapper calls
    norms: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [B, T] residual norms
    out: dict[int, list[dict[str, torch.Tensor] | None]] = field(default_factory=dict)


_ACTIVE: contextvars.ContextVar[_Capture | None] = contextvars.ContextVar("predictor_flow_capture", default=None)


def _inner_function(module, name: str):
    if name == "eager":
        return getattr(sys.modules[type(module).__module__], "eager_attention_forward")
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS[name]


def _flow_attention_forward(module, query, key, value, attention_mask, *args, **kwargs):
    """Collect `layer_flow` of each chain of the batch, then run the attention that was active."""
    cap = _ACTIVE.get()
    layer = cap.layer_of.get(id(module)) if cap is not None else None
    if layer is not None:
        cap.out[layer] = per_chain(cap.spans, attention_mask, lambda b, span, m: layer_flow(
            query[b], key[b], value[b], module.o_proj.weight, cap.norms[layer][b], span, scaling=kwargs.get("scaling"),
            mask=m, sliding_window=kwargs.get("sliding_window"), softcap=kwargs.get("softcap")))
    return _inner_function(module, cap.inner if cap is not None else "sdpa")(
        module, query, key, value, attention_mask, *args, **kwargs)


def _register(inner: str) -> str:
    name = _PREFIX + inner
    if name not in _registered:
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
        from transformers.modeling_utils import AttentionInterface

        AttentionInterface.register(name, _flow_attention_forward)
        masks = AttentionMaskInterface._global_mapping
        AttentionMaskInterface.register(name, masks.get(inner, sdpa_mask))
        _registered.add(name)
    return name


@contextlib.contextmanager
def flow_attention(model: torch.nn.Module, modules: list[torch.nn.Module], layers: list[torch.nn.Module],
                   spans: list[Span | None]):
    """Within the block, a forward pass of `model` collects the flow statistics of each chain (batch
    row with a span). modules: the attention module of each decoder layer in `layers` (depth order).

    Yields a list (per row; None for rows without a span) that is filled when the block exits:
    {stat: float32 CPU tensor} for FLOW_STATS [L, H, n] and MULTIHOP_STATS."""
    inner = model.config._attn_implementation or "eager"
    if inner.startswith(_PREFIX):
        raise RuntimeError("flow_attention does not nest")
    cap = _Capture({id(m): i for i, m in enumerate(modules)}, list(spans), inner)

    def keep_norm(i: int):
        def hook(_mod, args, kwargs):
            hs = args[0] if args else kwargs["hidden_states"]
            cap.norms[i] = hs.to(torch.float64 if hs.dtype == torch.float64 else torch.float32).norm(dim=-1)
        return hook

    handles = [l.register_forward_pre_hook(keep_norm(i), with_kwargs=True) for i, l in enumerate(layers)]
    result: list[dict[str, torch.Tensor] | None] = []
    old = model.config._attn_implementation
    token = _ACTIVE.set(cap)
    model.set_attn_implementation(_register(inner))
    try:
        yield result
    finally:
        model.set_attn_implementation(old)
        _ACTIVE.reset(token)
        for h in handles:
            h.remove()
    for b, span in enumerate(cap.spans):
        if span is None:
            result.append(None)
            continue
        per = [cap.out[i][b] for i in range(len(modules))]
        st = {s: torch.stack([x[s] for x in per]) for s in FLOW_STATS}
        st.update(multihop(torch.stack([x["answer"] for x in per]), torch.stack([x["rr"] for x in per])))
        result.append({k: v.to("cpu", torch.float32) for k, v in st.items()})
