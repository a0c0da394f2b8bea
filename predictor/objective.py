"""Likelihood objectives of the greedy search (Singh & Hakkani-Tur 2026, arXiv 2601.03066).

JOINT  = log P(R_kept, A | Q): every token after the prompt.
ANSWER = log P(A | Q, R_kept): answer tokens only.
"""
from __future__ import annotations

import torch

OBJECTIVES = ("joint", "answer")


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    return objective


def upcast(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits to float32 for log-softmax; float32/float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


@torch.no_grad()
def sequence_objective(model, ids: list[int], n_prompt: int, n_answer: int, objective: str) -> float:
    """Objective of one full sequence with a plain forward pass (no cache): the reference scorer."""
    x = torch.tensor([ids], device=next(model.parameters()).device)
    logits = upcast(model(input_ids=x, use_cache=False).logits[0])
    lp = torch.log_softmax(logits[:-1], dim=-1).gather(1, x[0, 1:, None])[:, 0]  # lp[t] scores ids[t+1]
    start = n_prompt - 1 if objective == "joint" else len(ids) - n_answer - 1
    return float(lp[start:].double().sum())
