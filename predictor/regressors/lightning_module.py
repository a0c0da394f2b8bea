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


class KeepBest(L.Callback):
    """The one keep-best callback of the Lightning trainers (the neural regressors, the fine-tuned ranker):
    after each validation, when `monitor` beats the best so far, a CPU copy of `state_of(module)` (default:
    the module's net's state_dict) is kept in memory, with its score and epoch. Lightning's ModelCheckpoint
    would write every best state to disk (for the fine-tuned ranker, a whole LM copy); here no checkpoint
    file exists anywhere, and the caller loads `best.state` after fit."""

    def __init__(self, state_of=None, monitor: str = "val_spearman"):
        self.state_of = state_of or (lambda module: module.net.state_dict())
        self.monitor = monitor
        self.score, self.state, self.epoch = -np.inf, None, -1

    # on_validation_end, not on_validation_epoch_end: Lightning runs callbacks' epoch-end hooks before the
    # module's, which is where val_spearman is logged (we would read the last epoch's).
    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        score = float(trainer.callback_metrics.get(self.monitor, -np.inf))
        if score > self.score:
            self.score, self.epoch = score, trainer.current_epoch
            self.state = {k: v.detach().cpu().clone() for k, v in self.state_of(pl_module).items()}


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
