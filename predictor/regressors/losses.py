"""Losses on padded chain batches: pred, target float [B, T], mask bool [B, T] (True = real token).

Targets are normalized greedy ranks in [0, 1] (1 = kept longest). Only the order of the
predictions within a chain matters for the evaluation (per-chain Spearman), so besides the
pointwise MSE we offer two rank-aware losses:

- "pairwise": RankNet's pairwise logistic loss (Burges et al., ICML 2005), averaged over all
  ordered pairs of tokens of the same chain whose targets differ;
- "listnet":  ListNet's top-one cross entropy (Cao et al., ICML 2007) between
  softmax(target / temperature) and softmax(pred) over each chain's tokens.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def mse_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over real tokens (pointwise regression on the normalized rank)."""
    m = mask.to(pred.dtype)
    return ((pred - target) ** 2 * m).sum() / m.sum().clamp_min(1.0)


def pairwise_logistic_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RankNet: mean over pairs (i, j) of one chain with target_i > target_j of log(1 + exp(-(s_i - s_j))).

    Memory O(B * T^2); chains have at most a few hundred tokens.
    """
    diff_s = pred.unsqueeze(2) - pred.unsqueeze(1)  # [B, T, T] s_i - s_j
    better = (target.unsqueeze(2) > target.unsqueeze(1)) & mask.unsqueeze(2) & mask.unsqueeze(1)
    w = better.to(pred.dtype)
    return (F.softplus(-diff_s) * w).sum() / w.sum().clamp_min(1.0)


def listnet_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                 temperature: float = 0.1) -> torch.Tensor:
    """ListNet top-one cross entropy per chain, averaged over chains."""
    neg = torch.finfo(pred.dtype).min
    p_true = torch.softmax(torch.where(mask, target / temperature, torch.full_like(target, neg)), dim=1)
    log_p = torch.log_softmax(torch.where(mask, pred, torch.full_like(pred, neg)), dim=1)
    ce = -(p_true * torch.where(mask, log_p, torch.zeros_like(log_p))).sum(1)
    return ce.mean()


LOSSES: dict[str, LossFn] = {"mse": mse_loss, "pairwise": pairwise_logistic_loss, "listnet": listnet_loss}


def get_loss(name: str) -> LossFn:
    """A loss by name; "a+b" sums losses (e.g. "mse+pairwise")."""
    parts = [p.strip() for p in name.split("+") if p.strip()]
    bad = [p for p in parts if p not in LOSSES]
    if bad or not parts:
        raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)} (or join with '+')")
    fns = [LOSSES[p] for p in parts]
    if len(fns) == 1:
        return fns[0]
    return lambda pred, target, mask: sum(f(pred, target, mask) for f in fns)
