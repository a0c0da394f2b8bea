"""Per-token attention statistics over a chain's reasoning keys, without materializing T x T maps.

Two ways to the same numbers (`ATTENTION_STATS`, each [heads, n] per layer):

- `reduce_weights`: the reference. It reduces one layer's full attention weights [heads, T, T],
  as eager attention returns them.
- `chunked_attention`: the fast path. It computes the layer's attention a block of queries at a
  time from the queries, keys and values the kernel would get (after RoPE / q-k norms): scores of
  the block against every earlier key, softmax over the row, the block's output (weights @ values),
  then the reductions of those same weights. So the weights are computed once, for the output and
  the statistics together; memory is one block of scores (`CHUNK_ELEMENTS`), time a little over
  an sdpa kernel's. `chunked_stats` is the same without the output.

`stats_attention(model, modules, spans)` runs a forward pass of an sdpa model with
`chunked_attention` on the given layers (an attention implementation registered with transformers
for the duration), every chain of a right-padded batch with its own `Span`.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

import torch

from .attention_impl import attention_implementation

# Attention statistics, each [layers, heads, n] over the n reasoning keys.
ATTENTION_STATS = (
    "answer_mean",   # mean attention from the answer tokens
    "later_mean",    # mean attention from later reasoning tokens (0 for the last one)
    "later_max",     # max attention from later reasoning tokens (0 for the last one)
    "last",          # attention from the final position of the scored sequence
    "probe_mean",    # mean attention from the appended end-of-reasoning probe
    "received_sum",  # total attention received from every later scored query (H2O's accumulated score)
    "window_mean",   # mean attention from the last `window` queries of the scored sequence (SnapKV)
)
CHUNK_ELEMENTS = 1 << 20  # scores per query block (heads x rows x keys): 4 MiB in float32, near cache-sized
IMPLEMENTATION = "predictor_sdpa_stats"  # the attention implementation name registered with transformers


@dataclass(frozen=True)
class Span:
    """Where one chain sits in its (right-padded) row: prompt tokens [0, p), reasoning [p, p + n),
    answer [p + n, scored), probe [scored, length), padding after `length`."""

    p: int
    n: int
    scored: int
    length: int
    window: int


def reduce_weights(w: torch.Tensor, p: int, n: int, t_scored: int, window: int) -> dict[str, torch.Tensor]:
    """Reference: reduce one layer's attention weights w [heads, T, T] to ATTENTION_STATS, each [heads, n]."""
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


def _rows(lo: int, hi: int, q0: int, q1: int) -> slice | None:
    """Rows of the block [q0, q1) that fall in [lo, hi), as a slice into the block (None if none)."""
    a, b = max(lo, q0), min(hi, q1)
    return slice(a - q0, b - q0) if a < b else None


def chunked_stats(q: torch.Tensor, k: torch.Tensor, span: Span, scaling: float | None = None,
                  mask: torch.Tensor | None = None, sliding_window: int | None = None,
                  softcap: float | None = None, chunk_elements: int | None = None) -> dict[str, torch.Tensor]:
    """ATTENTION_STATS of one chain from its queries q [H, T, d] and keys k [Hkv, T, d], each [H, n]
    (`chunked_attention` without the output)."""
    return chunked_attention(q, k, None, span, scaling, mask, sliding_window, softcap, chunk_elements)[1]


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor | None, span: Span,
                      scaling: float | None = None, mask: torch.Tensor | None = None,
                      sliding_window: int | None = None, softcap: float | None = None,
                      chunk_elements: int | None = None) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """Attention of one chain a block of queries at a time: (output [H, length, d] or None without v,
    ATTENTION_STATS each [H, n]).

    q [H, T, d], k and v [Hkv, T, d] (grouped-query heads: H a multiple of Hkv), after RoPE/norms;
    only the first `span.length` positions are used. mask: None (causal, plus `sliding_window` when
    given) or the layer's mask rows [1|H, T, T], bool (True = attend) or additive float. The output
    is softmax(q k^T * scaling + mask) v, as eager attention computes it (in q's dtype); the
    statistics equal `reduce_weights` on those weights. Computed in float32 (float64 for float64
    inputs). Memory: one block of scores, about `chunk_elements` (default CHUNK_ELEMENTS) values.
    """
    p, n, t_sc, T = span.p, span.n, span.scored, span.length
    H, Hkv, d = q.shape[0], k.shape[0], q.shape[-1]
    g = H // Hkv
    dt = torch.float64 if q.dtype == torch.float64 else torch.float32
    scale = scaling if scaling is not None else d ** -0.5
    first = 0 if v is not None else p  # without an output, only queries from the reasoning on matter
    qs = q[:, first:T].to(dt).reshape(Hkv, g, T - first, d) * scale
    kk = k[:, :T].to(dt)
    vv = v[:, :T].to(dt) if v is not None else None
    out = torch.empty(Hkv, g, T, v.shape[-1], dtype=q.dtype, device=q.device) if v is not None else None
    dev = q.device
    z = lambda: torch.zeros(H, n, dtype=dt, device=dev)  # noqa: E731
    acc = {s: z() for s in ("answer", "later", "later_max", "last", "probe", "window", "diag")}
    w_lo = max(p, t_sc - span.window)
    rows = min(T - first, max(1, (chunk_elements or CHUNK_ELEMENTS) // max(1, H * T)))
    idx = torch.arange(T, device=dev)
    causal_only = mask is None and not (sliding_window and sliding_window < T)
    if causal_only:  # the only hidden keys of a block are above its diagonal square
        above = torch.zeros(rows, rows, dtype=dt, device=dev).masked_fill_(idx[:rows, None] < idx[None, :rows],
                                                                             float("-inf"))
    for q0 in range(first, T, rows):
        q1 = min(T, q0 + rows)
        c = q1 - q0
        s = torch.bmm(qs[:, :, q0 - first:q1 - first].reshape(Hkv, g * c, d), kk[:, :q1].transpose(1, 2))
        s = s.view(H, c, q1)
        if softcap:
            s = torch.tanh(s / softcap) * softcap
        if causal_only:
            s[:, :, q0:q1] += above[:c, :c]
        elif mask is not None:
            m = mask[:, q0:q1, :q1]
            s = s.masked_fill(~m, float("-inf")) if m.dtype == torch.bool else s + m.to(dt)
        else:
            qi = idx[q0:q1, None]
            s = s.masked_fill((idx[None, :q1] > qi) | (idx[None, :q1] <= qi - sliding_window), float("-inf"))
        w = torch.softmax(s, dim=-1)
        del s
        if out is not None:
            out[:, :, q0:q1] = torch.bmm(w.view(Hkv, g * c, q1), vv[:, :q1]).view(Hkv, g, c, -1)
        kn = min(n, q1 - p)  # reasoning keys this block can see
        if q1 <= p or kn <= 0:
            continue
        wr = w[:, :, p:p + kn]  # [H, c, kn] block rows x visible reasoning keys
        for name, (lo, hi) in (("answer", (p + n, t_sc)), ("probe", (t_sc, T)), ("window", (w_lo, t_sc))):
            r = _rows(lo, hi, q0, q1)
            if r is not None:
                acc[name][:, :kn] += wr[:, r].sum(1)
        if q0 <= t_sc - 1 < q1:
            acc["last"][:, :kn] = wr[:, t_sc - 1 - q0]
        r = _rows(p, p + n, q0, q1)
        if r is not None:  # reasoning queries: only strictly later ones count, so drop the diagonal (last use of w)
            blk = wr[:, r]
            i = torch.arange(r.stop - r.start, device=dev)
            j = i + (q0 + r.start - p)
            acc["diag"][:, j] = blk[:, i, j]
            blk[:, i, j] = 0
            acc["later"][:, :kn] += blk.sum(1)
            acc["later_max"][:, :kn] = torch.maximum(acc["later_max"][:, :kn], blk.amax(1))
        del w, wr
    cnt = (n - 1 - torch.arange(n, device=dev)).clamp(min=1).to(dt)
    n_probe, n_ans, n_win = T - t_sc, t_sc - p - n, t_sc - w_lo
    stats = {
        "answer_mean": acc["answer"] / n_ans if n_ans else torch.full_like(acc["answer"], float("nan")),
        "later_mean": acc["later"] / cnt,
        "later_max": acc["later_max"],
        "last": acc["last"],
        "probe_mean": acc["probe"] / n_probe if n_probe else acc["probe"],
        "received_sum": acc["later"] + acc["diag"] + acc["answer"],  # every scored query from the key's own on
        "window_mean": acc["window"] / n_win,
    }
    return (out.view(H, T, -1) if out is not None else None), stats


@dataclass
class _Capture:
    """The layers being observed (module id -> depth index) and what each chain's statistics became."""

    layer_of: dict[int, int]
    spans: list[Span | None]  # per batch row; None: a row whose statistics are not wanted
    chunk_elements: int
    out: dict[int, list[dict[str, torch.Tensor]]]  # layer -> per row stats (CPU float32)


_ACTIVE: contextvars.ContextVar[_Capture | None] = contextvars.ContextVar("predictor_attention_capture", default=None)



def per_chain(spans: list, attention_mask: torch.Tensor | None, fn) -> list:
    """[fn(b, span, chain b's mask) for each chain b of the batch], None where a chain has no span (a
    batch-1 mask is shared by every chain; no mask stays None)."""
    def mask(b):
        return None if attention_mask is None else attention_mask[b if attention_mask.shape[0] > 1 else 0]

    return [None if span is None else fn(b, span, mask(b)) for b, span in enumerate(spans)]

def _stats_attention_forward(module, query, key, value, attention_mask, *args, **kwargs):
    """On a layer being observed: `chunked_attention` per batch row (its output replaces sdpa's, so the
    weights are computed once); on any other layer: sdpa."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cap = _ACTIVE.get()
    layer = cap.layer_of.get(id(module)) if cap is not None else None
    if layer is None or kwargs.get("dropout", 0.0) or set(kwargs) - _KNOWN_KWARGS:
        out = sdpa_attention_forward(module, query, key, value, attention_mask, *args, **kwargs)
        if layer is None:
            return out
        compute_output = False  # an attention variant chunked_attention does not reproduce: sdpa's output
    else:
        out = (torch.zeros(query.shape[0], query.shape[2], query.shape[1], value.shape[-1], dtype=query.dtype,
                           device=query.device), None)  # [B, T, H, d]; rows past a chain's length stay 0
        compute_output = True
    def one(b, span, m):
        o, st = chunked_attention(query[b], key[b], value[b] if compute_output else None, span,
                                  scaling=kwargs.get("scaling"), mask=m, sliding_window=kwargs.get("sliding_window"),
                                  softcap=kwargs.get("softcap"), chunk_elements=cap.chunk_elements)
        if o is not None:
            out[0][b, :span.length] = o.transpose(0, 1)
        return {name: v.to("cpu", torch.float32) for name, v in st.items()}

    cap.out[layer] = per_chain(cap.spans, attention_mask, one)
    return out


# keyword arguments of the attention call that chunked_attention honours (others: sdpa computes the output)
_KNOWN_KWARGS = frozenset({"dropout", "scaling", "sliding_window", "softcap", "is_causal", "position_ids",
                           "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k", "output_attentions",
                           "use_cache", "cache_position"})


def supports_chunked(model: torch.nn.Module) -> bool:
    """True when the model runs sdpa attention, which `stats_attention` wraps (else: eager reference)."""
    return getattr(model.config, "_attn_implementation", None) in ("sdpa", IMPLEMENTATION)


@contextlib.contextmanager
def stats_attention(model: torch.nn.Module, modules: list[torch.nn.Module], spans: list[Span | None],
                    chunk_elements: int | None = None):
    """Within the block, a forward pass of `model` (an sdpa model) runs sdpa and collects `chunked_stats`
    of each of `modules` (attention modules, in depth order) for each batch row with a span.

    Yields a dict layer index -> list (per row) of {stat: float32 CPU [heads, n]} that fills during the pass.
    """
    if not supports_chunked(model):
        raise ValueError(f"chunked attention statistics need an sdpa model, not {model.config._attn_implementation!r}")
    cap = _Capture({id(m): i for i, m in enumerate(modules)}, list(spans), chunk_elements or CHUNK_ELEMENTS, {})
    token = _ACTIVE.set(cap)
    try:
        with attention_implementation(model, IMPLEMENTATION, _stats_attention_forward):
            yield cap.out
    finally:
        _ACTIVE.reset(token)
