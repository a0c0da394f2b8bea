"""Attention for packed candidate blocks: each query sees only its shared prefix and its own candidate.

The packed layout (`suffix_reuse`) runs many candidates' suffix inputs as one sequence. Through
a 4D mask, every query would scan the prefix plus every candidate's keys of the block, most of them
masked. Here the block's queries are cut into chunks of consecutive candidates and each chunk runs one
sdpa call over its own keys only: the prefix (up to the chunk's last candidate), the chunk's
candidates' earlier scored inputs (gathered from the suffix store) and the chunk's new inputs. Grouped
query heads share their key head without copies (the g query heads of a key head go into one sdpa
head of g x T rows). Each layer also writes its new keys and values into the store.

Used as a transformers attention implementation (`IMPLEMENTATION`) inside `packed_attention(model,
block)`; outside an active block it is plain sdpa. The forward runs without a cache: key/value hold
the new inputs only, at the positions passed as `position_ids`. Tests compare it with the 4D-mask path.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..attention_impl import attention_implementation, context_value

IMPLEMENTATION = "predictor_packed"  # the attention implementation name registered with transformers

_ACTIVE: contextvars.ContextVar["PackedBlock | None"] = contextvars.ContextVar("packed_block", default=None)
# attention-call keywords the packed path honours or may ignore; any other one set -> PackedAttentionUnsupported
_KNOWN_KWARGS = frozenset({"dropout", "scaling", "sliding_window", "is_causal", "position_ids", "use_cache",
                           "cache_position", "output_attentions"})


class PackedAttentionUnsupported(RuntimeError):
    """The model's attention needs something the packed path does not implement (a logit soft cap,
    attention sinks, ...); callers fall back to the 4D-mask path."""


@dataclass
class PackedBlock:
    """One packed block: T queries, grouped by candidate (ascending), cut into chunks.

    prefix: per layer (keys, values) [1, kvh, >= max pre_len, hd] of the shared prefix.
    store: per layer (keys, values) [kvh, S, hd] of the suffix store, or None.
    chunks: per chunk (q0, q1, pre_len, known slots [K] long, additive mask [1, 1, g * T_c, pre_len + K + T_c]);
        queries q0:q1 see prefix keys [0, pre_len), the store slots `known` and the chunk's new inputs,
        as the mask allows (its T_c rows repeated for the g query heads of a key head).
    dst: store slots [T] (long) for the new inputs' keys and values, or None (not stored).
    """

    prefix: list[tuple[torch.Tensor, torch.Tensor]]
    store: list[tuple[torch.Tensor, torch.Tensor]] | None
    chunks: list[tuple[int, int, int, torch.Tensor, torch.Tensor]]
    dst: torch.Tensor | None


def build_block(prefix, store, p: int, cands: list[int], done: list[int], new: list[int], off: list[int],
                dst: list[int], dtype: torch.dtype, device: torch.device, chunk_keys: int,
                groups: int) -> PackedBlock:
    """The PackedBlock for candidates `cands` (ascending; candidate j's prefix is the first p + j
    positions) whose inputs done[i]:done[i]+new[i] are run, the first done[i] being in `store` at slots
    off[j]:off[j]+done[i]; the new inputs' keys go to store slots `dst`. A chunk closes once its own keys
    (known + new) reach `chunk_keys`; `groups` query heads share a key head."""
    chunks, q0, i = [], 0, 0
    lo = torch.finfo(dtype).min
    while i < len(cands):
        i2, own = i, 0
        while i2 < len(cands) and (i2 == i or own + done[i2] + new[i2] <= chunk_keys):
            own += done[i2] + new[i2]
            i2 += 1
        cs, ds, ns = cands[i:i2], done[i:i2], new[i:i2]
        tq = sum(ns)
        pre_len = p + cs[-1]
        q_row = torch.repeat_interleave(torch.arange(len(cs)), torch.tensor(ns))
        k_row = torch.repeat_interleave(torch.arange(len(cs)), torch.tensor(ds))
        lim = torch.tensor([p + c for c in cs])[q_row]
        u = torch.arange(tq)
        allowed = torch.cat([torch.arange(pre_len)[None] < lim[:, None],
                             k_row[None] == q_row[:, None],
                             (q_row[:, None] == q_row[None]) & (u[None] <= u[:, None])], dim=1)
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, lo).to(device)
        known = torch.tensor([off[j] + t for j, k in zip(cs, ds) for t in range(k)], dtype=torch.long, device=device)
        chunks.append((q0, q0 + tq, pre_len, known, mask.repeat(groups, 1)[None, None]))
        q0 += tq
        i = i2
    dst_t = torch.tensor(dst, dtype=torch.long, device=device) if store is not None else None
    return PackedBlock(prefix, store, chunks, dst_t)


def attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask,
              scaling: float | None = None, dropout: float = 0.0, **kwargs):
    """transformers attention function: query [1, H, T, hd], key/value [1, kvh, T, hd] -> ([1, T, H, hd], None)."""
    blk = _ACTIVE.get()
    if blk is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    extra = [k for k, v in kwargs.items() if k not in _KNOWN_KWARGS and v is not None and v is not False]
    layer = getattr(module, "layer_idx", None)
    if extra or layer is None:
        raise PackedAttentionUnsupported(f"packed attention cannot honour {extra or ['a module without layer_idx']}")
    pk, pv = blk.prefix[layer]
    h, kvh, hd = query.shape[1], key.shape[1], query.shape[3]
    g = h // kvh
    if blk.store is not None:
        sk, sv = blk.store[layer]
        sk[:, blk.dst] = key[0]
        sv[:, blk.dst] = value[0]
    out = query.new_empty(1, query.shape[2], h, hd)
    for q0, q1, pre_len, known, mask in blk.chunks:
        ks, vs = [pk[:, :, :pre_len]], [pv[:, :, :pre_len]]
        if len(known):
            ks.append(sk[:, known][None])
            vs.append(sv[:, known][None])
        ks.append(key[:, :, q0:q1])
        vs.append(value[:, :, q0:q1])
        tq = q1 - q0
        q = query[:, :, q0:q1].reshape(1, kvh, g * tq, hd)  # the g query heads of a key head, stacked
        o = F.scaled_dot_product_attention(q, torch.cat(ks, 2), torch.cat(vs, 2), attn_mask=mask, scale=scaling)
        out[0, q0:q1] = o.view(kvh * g, tq, hd).transpose(0, 1)
    return out, None


def supported(model: torch.nn.Module) -> bool:
    """True for sdpa models without a logit soft cap, whose attention this path can replace."""
    cfg = model.config.get_text_config()
    return (getattr(model.config, "_attn_implementation", None) in ("sdpa", IMPLEMENTATION)
            and getattr(cfg, "attn_logit_softcapping", None) is None)


@contextlib.contextmanager
def packed_attention(model: torch.nn.Module):
    """Within the block, `model` runs `attention` (sdpa unless a block is `active`)."""
    with attention_implementation(model, IMPLEMENTATION, attention):
        yield


def active(block: PackedBlock):
    """Forwards inside run `block`'s layout (within `packed_attention`); a context manager."""
    return context_value(_ACTIVE, block)
