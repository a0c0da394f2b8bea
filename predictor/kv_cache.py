"""Pass KV caches to and from a transformers model across the versions pyproject allows.

transformers 5.24 renamed the forward argument and output field `past_key_values` to `cache`
(the old name warns with a FutureWarning and goes in 5.40); 5.0-5.23 only know `past_key_values`.
The name is read from the model's own forward signature, so custom models work too.
"""
from __future__ import annotations

import inspect
from functools import lru_cache

import torch


@lru_cache(maxsize=None)
def _kwarg_for(forward_fn) -> str:
    params = inspect.signature(forward_fn).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_kwargs(model: torch.nn.Module, cache) -> dict:
    """{name: cache} for `model(..., **cache_kwargs(model, cache), use_cache=True)`."""
    return {_kwarg_for(type(model).forward): cache}


def output_cache(out):
    """The cache a forward with use_cache=True returned (`out.cache` from 5.24, `out.past_key_values` before)."""
    cache = out.get("cache") if "cache" in out else None
    return cache if cache is not None else out["past_key_values"]


def layer_kv(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer (keys, values), each [batch, kv_heads, seq, head_dim], of a DynamicCache."""
    return [(k, v) for k, v, *_ in cache]


def prefix_cache(kv: list[tuple[torch.Tensor, torch.Tensor]], length: int, batch: int):
    """A DynamicCache holding the first `length` positions of `kv` (batch 1) for `batch` rows."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=[
        (k[:, :, :length].expand(batch, -1, -1, -1), v[:, :, :length].expand(batch, -1, -1, -1)) for k, v in kv
    ])


def cache_from_kv(kv: list[tuple[torch.Tensor, torch.Tensor]]):
    """A DynamicCache holding exactly the given per-layer (keys, values), each [batch, kv_heads, seq, head_dim]."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=kv)
