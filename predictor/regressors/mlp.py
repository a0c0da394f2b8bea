"""Per-token MLP: each token's score depends on its own feature row only (the paper's probe model
is a 2-layer MLP on attention features; Singh & Hakkani-Tur, arXiv 2601.03066)."""
from __future__ import annotations

import torch
from torch import nn


class TokenMLP(nn.Module):
    """x float [B, T, F] -> scores [B, T]; `mask` is accepted for a uniform interface and ignored."""

    def __init__(self, n_features: int, hidden: int = 128, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        dims = [n_features] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            blocks += [nn.Linear(a, b), nn.GELU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(dims[-1], 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(-1)
