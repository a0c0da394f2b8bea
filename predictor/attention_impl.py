"""Run a model through a custom transformers attention function for the duration of a block.

transformers picks a layer's attention function by name (`config._attn_implementation`). The
project's own attention functions (`attention_stats`, `packed_attention`) are registered under their
own names, with sdpa's mask builder, and switched on only while they are needed.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable

import torch

_registered: set[str] = set()


@contextlib.contextmanager
def attention_implementation(model: torch.nn.Module, name: str, forward: Callable):
    """Within the block, `model` runs `forward` (a transformers attention function, registered as `name`
    with the sdpa mask on first use); the model's previous implementation is restored on exit."""
    if name not in _registered:
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
        from transformers.modeling_utils import AttentionInterface

        AttentionInterface.register(name, forward)
        AttentionMaskInterface.register(name, sdpa_mask)
        _registered.add(name)
    old = model.config._attn_implementation
    model.set_attn_implementation(name)
    try:
        yield
    finally:
        model.set_attn_implementation(old)


@contextlib.contextmanager
def context_value(var: contextvars.ContextVar, value: Any):
    """Within the block, `var` holds `value` (how the project's attention functions learn what the
    current forward is for); the previous value is restored on exit."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)
