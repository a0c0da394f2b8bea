"""LightningModule that trains any chain-scoring nn.Module (TokenMLP, SequenceRanker) on padded
batches (x [B, T, F], y [B, T], mask [B, T]) with a pointwise or rank-aware loss (losses.py).

Logs train_loss, val_loss and val_spearman (mean per-chain Spearman of predictions with targets).
"""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import nn

from .losses import get_loss


class RankModule(L.LightningModule):
    def __init__(self, net: nn.Module, loss: str = "mse", lr: float = 1e-3, weight_decay: float = 1e-2):
        super().__init__()
        self.net = net
        self.loss_name, self.lr, self.weight_decay = loss, lr, weight_decay
        self.loss_fn = get_loss(loss)
        self._val_rho: list[float] = []

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(x, mask)

    def training_step(self, batch, batch_idx):
        x, y, mask = batch
        loss = self.loss_fn(self(x, mask), y, mask)
        self.log("train_loss", loss, prog_bar=True, batch_size=mask.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        from ..metrics import per_chain_spearman

        x, y, mask = batch
        pred = self(x, mask)
        self.log("val_loss", self.loss_fn(pred, y, mask), prog_bar=True, batch_size=mask.shape[0])
        p, t, m = (a.detach().float().cpu().numpy() for a in (pred, y, mask))
        m = m.astype(bool)
        self._val_rho += per_chain_spearman([pi[mi] for pi, mi in zip(p, m)], [ti[mi] for ti, mi in zip(t, m)]).tolist()

    def on_validation_epoch_end(self) -> None:
        if self._val_rho:
            self.log("val_spearman", float(np.mean(self._val_rho)), prog_bar=True)
        self._val_rho = []

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
