"""How many chains go into one forward pass: a token budget per batch and a length-sorted plan.

Chains are right-padded to the longest in their batch, so a batch costs (chains x longest length)
token slots. On CPU the budget is fixed and small (`CPU_TOKEN_BUDGET`: a CPU forward is compute-bound
already for one chain, bigger batches only cost cache misses and memory); on a GPU, where one short
chain leaves the device mostly idle, it follows the free device memory.
"""
from __future__ import annotations

import torch

# Padded token slots per forward pass on CPU. On the 2-core dev machine (1 thread, 20 GSM8K chains of
# ~140-160 tokens, /tmp script timing predict_ranks(list) per budget): 1 -> 26-33 s, 512 -> 23 s,
# 1024 -> 23-24 s, 2048 -> 24-25 s, 4096 -> 31 s. CPU matmuls are compute-bound already at one chain;
# big batches only add cache misses, so a few chains per pass is the sweet spot.
CPU_TOKEN_BUDGET = 1024
GPU_MEMORY_FRACTION = 0.5  # share of the free device memory a batch may plan to use


def bytes_per_token(model: torch.nn.Module, eager: bool = False, length: int = 0) -> int:
    """Rough activation memory of one token slot in a forward pass (bytes): the residual stream, q/k/v
    and MLP activations of one layer at a time, kept hidden states; eager attention adds a [heads, T] row."""
    cfg = model.config.get_text_config()
    item = next(model.parameters()).element_size()
    hidden, inter = int(cfg.hidden_size), int(getattr(cfg, "intermediate_size", 4 * cfg.hidden_size))
    per = (16 * hidden + 4 * inter) * item + 4 * hidden * (int(cfg.num_hidden_layers) + 1) // 4
    if eager:
        per += 3 * int(cfg.num_attention_heads) * length * 4
    return per


def token_budget(model: torch.nn.Module, eager: bool = False, length: int = 0) -> int:
    """Padded token slots per batch: CPU_TOKEN_BUDGET on CPU, else by free device memory."""
    dev = next(model.parameters()).device
    if dev.type != "cuda":
        return CPU_TOKEN_BUDGET
    free, _ = torch.cuda.mem_get_info(dev)
    return max(1, int(free * GPU_MEMORY_FRACTION) // bytes_per_token(model, eager, length))


def plan_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Indices of `lengths` grouped into batches, shortest first, each with (size x its longest) <= budget
    (a single longer sequence still gets a batch of its own)."""
    if budget < 1:
        raise ValueError(f"token budget must be >= 1, got {budget}")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur and (len(cur) + 1) * lengths[i] > budget:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches
