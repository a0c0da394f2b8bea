"""A fine-tuned LM as the token scorer: LoRA adapters on the LM plus a bidirectional head.

LLMLingua-2 (Pan et al., 2024) and TokenSkip (Xia et al., 2025) fine-tune a model as the token
scorer instead of reading fixed features. Here the causal LM gets LoRA adapters (Hu et al., 2022;
the `peft` library) on its attention and MLP projections, and its last hidden state at each reasoning
token goes through the package's `SequenceRanker` (a small bidirectional Transformer encoder), since
a causal LM's state at token i cannot see the tokens after it, on which a token's importance depends.
It trains with the regressors' losses (losses.py) on the normalized greedy ranks of full chains and
pruned states, with Lightning's Trainer, early-stopping on validation per-chain Spearman.

Inference is one sdpa forward pass of the adapted LM (the adapters are merged into a copy of the
weights; the LM passed in is never modified); no attention weights are needed.
Saved as `lora.safetensors` (adapter weights), `head.safetensors` and `regressor.json`; loading
needs the same base LM (fingerprint checked by the caller) and never unpickles.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .layout import Layout
from .regressors.base import RegressorLoadError, read_config, write_config

LORA_FILE = "lora.safetensors"
HEAD_FILE = "head.safetensors"
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class RankExample:
    """One training example: a chain's layout, the observed reasoning indices and their targets [m]."""

    layout: Layout
    kept: list[int]
    y: np.ndarray


def _batch(layouts: Sequence[Layout], kepts: Sequence[Sequence[int]], device) -> dict[str, torch.Tensor]:
    """Right-padded ids [B, S], attention mask [B, S], reasoning start [B] and reasoning mask [B, T]."""
    seqs = [lay.sequence(list(k)) for lay, k in zip(layouts, kepts)]
    S, T = max(len(s) for s in seqs), max(len(k) for k in kepts)
    ids = torch.zeros(len(seqs), S, dtype=torch.long)
    att = torch.zeros(len(seqs), S, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = torch.tensor(s)
        att[b, : len(s)] = 1
    start = torch.tensor([len(lay.prompt_ids) for lay in layouts])
    mask = torch.zeros(len(seqs), T, dtype=torch.bool)
    for b, k in enumerate(kepts):
        mask[b, : len(k)] = True
    return {"ids": ids.to(device), "att": att.to(device), "start": start.to(device), "mask": mask.to(device)}


class LMRankerNet(nn.Module):
    """(batch of `_batch`) -> scores [B, T]: the adapted LM's last hidden state at each reasoning
    token, then `SequenceRanker` over the chain."""

    def __init__(self, lm_model: nn.Module, head: nn.Module):
        super().__init__()
        self.lm = lm_model
        self.head = head

    def forward(self, batch: dict[str, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        from .lm import base_and_head

        model = self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm  # peft or merged
        base, _, _ = base_and_head(model)
        h = base(input_ids=batch["ids"], attention_mask=batch["att"], use_cache=False).last_hidden_state
        T = batch["mask"].shape[1]
        idx = batch["start"][:, None] + torch.arange(T, device=h.device)[None]  # [B, T]
        idx = idx.clamp(max=h.shape[1] - 1)
        x = h.gather(1, idx[..., None].expand(-1, -1, h.shape[-1])).float()
        return self.head(x, batch["mask"])


class _Examples(torch.utils.data.Dataset):
    def __init__(self, ex: Sequence[RankExample]):
        self.ex = list(ex)

    def __len__(self) -> int:
        return len(self.ex)

    def __getitem__(self, i: int) -> RankExample:
        return self.ex[i]


def _collate(items: list[RankExample]):
    b = _batch([e.layout for e in items], [e.kept for e in items], "cpu")
    y = torch.zeros(b["mask"].shape)
    for i, e in enumerate(items):
        y[i, : len(e.y)] = torch.from_numpy(np.asarray(e.y, dtype=np.float32))
    return b, y, b["mask"]


class LMRanker:
    """Fine-tuned LM scorer with a scikit-learn style interface (`fit`, `score_layouts`, `save`, `load`)."""

    kind = "lm-ranker"

    def __init__(self, lora_r: int = 8, lora_alpha: int = 16, lora_dropout: float = 0.05,
                 target_modules: Sequence[str] = DEFAULT_TARGETS, top_layers: float = 1.0, head_dim: int = 64, head_layers: int = 1,
                 head_heads: int = 4, dropout: float = 0.1, loss: str = "mse+pairwise", lr: float = 5e-4,
                 weight_decay: float = 1e-2, batch_size: int = 4, max_epochs: int = 3, patience: int = 1,
                 val_every: float = 0.5, seed: int = 0, accelerator: str = "auto", progress: bool = False):
        self.lora_r, self.lora_alpha, self.lora_dropout = lora_r, lora_alpha, lora_dropout
        self.target_modules = tuple(target_modules)
        self.top_layers = top_layers  # fraction of the top decoder layers that get adapters (backprop stops below)
        self.head_dim, self.head_layers, self.head_heads, self.dropout = head_dim, head_layers, head_heads, dropout
        self.loss, self.lr, self.weight_decay = loss, lr, weight_decay
        self.batch_size, self.max_epochs, self.patience, self.val_every = batch_size, max_epochs, patience, val_every
        self.seed, self.accelerator, self.progress = seed, accelerator, progress

    def get_params(self) -> dict[str, Any]:
        keys = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "top_layers", "head_dim", "head_layers", "head_heads",
                "dropout", "loss", "lr", "weight_decay", "batch_size", "max_epochs", "patience", "val_every", "seed",
                "accelerator", "progress")
        return {k: (list(getattr(self, k)) if isinstance(getattr(self, k), tuple) else getattr(self, k)) for k in keys}

    # --- building -------------------------------------------------------------------------------
    def _targets(self, model: nn.Module) -> list[str]:
        names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        found = [t for t in self.target_modules if t in names]
        if not found:
            raise ValueError(f"none of the LoRA target modules {list(self.target_modules)} is a linear layer of "
                             f"{type(model).__name__} (its linear layers: {sorted(names)[:12]})")
        return found

    def _build(self, lm) -> LMRankerNet:
        from peft import LoraConfig, get_peft_model

        from .regressors.sequence import SequenceRanker

        torch.manual_seed(self.seed)
        model = copy.deepcopy(lm.model).float() if lm.dtype in (torch.float16, torch.bfloat16) else copy.deepcopy(lm.model)
        model.config.use_cache = False
        L = int(model.config.get_text_config().num_hidden_layers)
        first = min(L - 1, max(0, L - round(self.top_layers * L)))
        cfg = LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                         target_modules=self._targets(model), bias="none",
                         layers_to_transform=list(range(first, L)))
        peft_model = get_peft_model(model, cfg)
        d = int(lm.model.config.get_text_config().hidden_size)
        head = SequenceRanker(d, self.head_dim, self.head_layers, self.head_heads, self.dropout)
        return LMRankerNet(peft_model, head).to(lm.device)  # the head joins the LM copy's device

    # --- training -------------------------------------------------------------------------------
    def fit(self, lm, train: Sequence[RankExample], val: Sequence[RankExample] | None = None) -> "LMRanker":
        """Fine-tune adapters + head on `train`; early-stop on validation per-chain Spearman."""
        import lightning as L
        from lightning.pytorch.callbacks import EarlyStopping

        from .regressors.lightning_module import KeepBest, RankModule
        from .regressors.neural import _quiet_lightning

        if not train:
            raise ValueError("no training examples")
        L.seed_everything(self.seed, workers=True, verbose=False)
        net = self._build(lm).train()
        module = RankModule(net, self.loss, self.lr, self.weight_decay)
        g = torch.Generator().manual_seed(self.seed)
        train_dl = torch.utils.data.DataLoader(_Examples(train), batch_size=self.batch_size, shuffle=True,
                                               collate_fn=_collate, generator=g)
        val_dl = None
        best = KeepBest(lambda module: _trainable_state(module.net))
        callbacks: list[Any] = []
        if val:
            val_dl = torch.utils.data.DataLoader(_Examples(val), batch_size=self.batch_size, shuffle=False,
                                                 collate_fn=_collate)

            callbacks += [best, EarlyStopping("val_spearman", mode="max", patience=self.patience)]
        with _quiet_lightning():
            accelerator = self.accelerator if self.accelerator != "auto" else lm.device.type  # train where the LM is
            trainer = L.Trainer(max_epochs=self.max_epochs, accelerator=accelerator, devices=1,
                                logger=False, enable_checkpointing=False, enable_progress_bar=self.progress,
                                enable_model_summary=False, callbacks=callbacks, num_sanity_val_steps=0,
                                val_check_interval=self.val_every if val else None)
            trainer.fit(module, train_dl, val_dl)
        if best.state is not None:
            net.load_state_dict(best.state, strict=False)
        self.best_score_ = None if best.state is None else float(best.score)
        self._finish(net.to(lm.device))  # Lightning may hand the module back on another device
        return self

    def _finish(self, net: LMRankerNet) -> None:
        """Keep the adapter weights for saving, then merge them into the copy for fast inference."""
        from peft import get_peft_model_state_dict

        self.lora_state_ = {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(net.lm).items()}
        self.head_state_ = {k: v.detach().cpu().clone() for k, v in net.head.state_dict().items()}
        net.lm = net.lm.merge_and_unload()
        self.net_ = net.eval()

    # --- inference ------------------------------------------------------------------------------
    @torch.no_grad()
    def score_layouts(self, layouts: Sequence[Layout], kepts: Sequence[Sequence[int]] | None = None
                      ) -> list[np.ndarray]:
        """Scores [m_i] per layout (higher = kept longer); kepts: the observed reasoning indices (default all)."""
        if not hasattr(self, "net_"):
            raise RuntimeError("this LMRanker is not fitted yet; call fit() or load()")
        kepts = [list(range(lay.n)) for lay in layouts] if kepts is None else [list(k) for k in kepts]
        dev = next(self.net_.parameters()).device
        out = []
        for lay, k in zip(layouts, kepts):
            b = _batch([lay], [k], dev)
            out.append(self.net_(b, b["mask"])[0, : len(k)].double().cpu().numpy())
        return out

    # --- files ----------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Adapters (peft's own state dict: `get_peft_model_state_dict`, read back by `set_peft_model_state_dict`)
        and head as safetensors, parameters in regressor.json. `PeftModel.save_pretrained` would store the
        same adapter tensors plus an adapter_config.json repeating regressor.json, and needs the unmerged
        model; the predictor directories written so far keep loading without pickle either way."""
        from safetensors.torch import save_file

        if not hasattr(self, "net_"):
            raise RuntimeError("this LMRanker is not fitted yet")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.lora_state_.items()}, str(d / LORA_FILE))
        save_file({k: v.contiguous() for k, v in self.head_state_.items()}, str(d / HEAD_FILE))
        write_config(d, self.kind, self.get_params(), {"best_score": self.best_score_})

    @classmethod
    def load(cls, directory: str | Path, lm) -> "LMRanker":
        """Rebuild on `lm` (the base LM it was trained on) from the adapter and head weights."""
        from peft import set_peft_model_state_dict
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        d = Path(directory)
        cfg = read_config(d, cls.kind)
        self = cls(**cfg["params"])
        self.best_score_ = cfg["state"].get("best_score")
        try:
            lora, head = load_file(str(d / LORA_FILE)), load_file(str(d / HEAD_FILE))
        except (SafetensorError, OSError) as e:
            raise RegressorLoadError(f"{d}: missing or invalid {LORA_FILE}/{HEAD_FILE} ({e})") from None
        net = self._build(lm)
        want = {k for k in _trainable_state(net) if k.startswith("lm.") and "lora_" in k}
        have = {f"lm.{k}" for k in lora}
        result = set_peft_model_state_dict(net.lm, lora)
        missing = sorted(k for k in want if not any(k.startswith(h.rsplit(".weight", 1)[0]) for h in have))
        if getattr(result, "unexpected_keys", None) or missing:
            raise RegressorLoadError(f"{d / LORA_FILE}: adapter weights do not fit this LM (unexpected "
                                     f"{list(getattr(result, 'unexpected_keys', []))[:3]}, missing {missing[:3]})")
        try:
            net.head.load_state_dict(head, strict=True)
        except RuntimeError as e:
            raise RegressorLoadError(f"{d / HEAD_FILE}: head weights do not match regressor.json ({e})") from None
        self._finish(net)
        return self


def _trainable_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """Only the parameters that train (adapters and head): the frozen LM is never copied."""
    names = {n for n, p in net.named_parameters() if p.requires_grad}
    return {k: v for k, v in net.state_dict().items() if k in names}
