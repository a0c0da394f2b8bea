"""Sequence models over a chain's token features, so a token's score can depend on its neighbours
(greedy importance is dynamic: whether a token survives depends on what else is in the chain).

- arch="transformer": input projection, a residual 1-D convolution over neighbouring tokens
  (kernel 5: self-attention alone has no notion of adjacency), then a bidirectional pre-norm
  Transformer encoder (Vaswani et al., 2017) with padding masked; absolute position enters via
  the position feature group.
- arch="gru": a bidirectional GRU (Cho et al., 2014) over the projected features.
"""
from __future__ import annotations

import torch
from torch import nn

ARCHS = ("transformer", "gru")


class SequenceRanker(nn.Module):
    """x float [B, T, F], mask bool [B, T] (True = real token) -> scores [B, T]."""

    def __init__(self, n_features: int, d_model: int = 64, layers: int = 2, heads: int = 4,
                 dropout: float = 0.1, arch: str = "transformer"):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
        self.arch = arch
        self.proj = nn.Sequential(nn.Linear(n_features, d_model), nn.GELU(), nn.Dropout(dropout))
        self.local = nn.Conv1d(d_model, d_model, kernel_size=5, padding=2) if arch == "transformer" else None
        if arch == "transformer":
            layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model, dropout=dropout,
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            out_dim = d_model
        else:
            self.encoder = nn.GRU(d_model, d_model // 2, num_layers=layers, batch_first=True,
                                  bidirectional=True, dropout=dropout if layers > 1 else 0.0)
            out_dim = 2 * (d_model // 2)
        # the token's own projected features are added back so the model can stay pointwise
        self.head = nn.Sequential(nn.LayerNorm(out_dim + d_model), nn.Linear(out_dim + d_model, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        h = self.proj(x) * mask.unsqueeze(-1)
        if self.arch == "transformer":
            hl = h + torch.nn.functional.gelu(self.local(h.transpose(1, 2)).transpose(1, 2)) * mask.unsqueeze(-1)
            z = self.encoder(hl, src_key_padding_mask=~mask)
        else:
            lengths = mask.sum(1).clamp_min(1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.encoder(packed)
            z, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.head(torch.cat([z, h], dim=-1)).squeeze(-1)
