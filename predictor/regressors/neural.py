"""Scikit-learn style wrapper around the Lightning networks: `NeuralRankRegressor(kind="mlp"|"sequence")`.

fit() standardizes features (train mean/std, clipped to +-clip), trains with a Lightning Trainer
(seeded, deterministic=True, accelerator auto, no logger, no checkpoint files), early-stops on the
validation per-chain Spearman and restores the best epoch's weights (kept in memory).
save() writes model.safetensors (network weights + feature_mean/feature_std) and regressor.json
(hyper-parameters); load() rebuilds the nn.Module from the JSON and loads the safetensors.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import RankRegressor, RegressorLoadError, add_chain_features, check_xy, read_config, write_config

WEIGHTS_FILE = "model.safetensors"
KINDS = ("mlp", "sequence")


def pad_batch(X: Sequence[np.ndarray], y: Sequence[np.ndarray] | None = None):
    """Per-chain arrays -> x float32 [B, T, F], y float32 [B, T], mask bool [B, T] (zero padded)."""
    T, F = max(len(x) for x in X), X[0].shape[1]
    x = torch.zeros(len(X), T, F)
    t = torch.zeros(len(X), T)
    m = torch.zeros(len(X), T, dtype=torch.bool)
    for i, xi in enumerate(X):
        x[i, : len(xi)] = torch.from_numpy(np.asarray(xi, dtype=np.float32))
        m[i, : len(xi)] = True
        if y is not None:
            t[i, : len(xi)] = torch.from_numpy(np.asarray(y[i], dtype=np.float32))
    return x, t, m


@contextlib.contextmanager
def _quiet_lightning():
    """Silence Lightning's info banners and the few-workers hints (chains are tiny; workers cost more), and
    send its epoch bars (tqdm on stdout) to stderr: stdout is for tables and results."""
    logs = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in logs]
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*(num_workers|does not have many workers|LeafSpec|litlogger|val_dataloader).*")
        for lg in logs:
            lg.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                yield
        finally:
            for lg, lv in zip(logs, levels):
                lg.setLevel(lv)


class _Chains(torch.utils.data.Dataset):
    def __init__(self, X: list[np.ndarray], y: list[np.ndarray]):
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int):
        return self.X[i], self.y[i]


def _collate(items):
    return pad_batch([a for a, _ in items], [b for _, b in items])


class NeuralRankRegressor(RankRegressor):
    """A per-token MLP ("mlp") or a sequence model over the chain ("sequence") scoring each token."""

    fitted_attr = "net_"

    def __init__(self, kind: str = "mlp", hidden: int = 128, layers: int = 2, heads: int = 4,
                 arch: str = "transformer", dropout: float = 0.1, loss: str = "mse+pairwise", lr: float = 1e-3,
                 weight_decay: float = 1e-2, batch_size: int = 16, max_epochs: int = 100, patience: int = 15,
                 clip: float = 10.0, chain_features: str = "none", seed: int = 0, accelerator: str = "auto",
                 progress: bool = False):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.hidden = hidden
        self.layers = layers
        self.heads = heads
        self.arch = arch
        self.dropout = dropout
        self.loss = loss
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.clip = clip
        self.chain_features = chain_features  # "rank"/"zscore": append within-chain normalized columns
        self.seed = seed
        self.accelerator = accelerator
        self.progress = progress

    def build_net(self, n_features: int) -> torch.nn.Module:
        """The plain nn.Module (weights random until trained or loaded)."""
        if self.kind == "mlp":
            from .mlp import TokenMLP

            return TokenMLP(n_features, self.hidden, self.layers, self.dropout)
        from .sequence import SequenceRanker

        return SequenceRanker(n_features, self.hidden, self.layers, self.heads, self.dropout, self.arch)

    def _standardize(self, X: list[np.ndarray]) -> list[np.ndarray]:
        """Raw chains [n, F] -> network inputs [n, F'] (chain features appended, standardized, clipped)."""
        X = add_chain_features(X, self.chain_features)
        return [np.clip((x - self.mean_) / self.std_, -self.clip, self.clip).astype(np.float32) for x in X]

    def fit(self, X: Sequence[np.ndarray], y: Sequence[np.ndarray], X_val: Sequence[np.ndarray] | None = None,
            y_val: Sequence[np.ndarray] | None = None, feature_names: list[str] | None = None,
            fast_dev_run: bool = False) -> "NeuralRankRegressor":
        """Train on chains X [n_i, F] with normalized ranks y [n_i]; early-stop on validation Spearman."""
        import lightning as L
        from lightning.pytorch.callbacks import EarlyStopping

        from .lightning_module import KeepBest, RankModule

        Xs, ys = check_xy(X, y)
        flat = np.concatenate(add_chain_features(Xs, self.chain_features)).astype(np.float64)
        self.mean_ = flat.mean(0).astype(np.float32)
        self.std_ = np.maximum(flat.std(0), 1e-6).astype(np.float32)
        self.n_features_ = Xs[0].shape[1]
        L.seed_everything(self.seed, workers=True, verbose=False)
        net = self.build_net(len(self.mean_))
        module = RankModule(net, self.loss, self.lr, self.weight_decay)
        g = torch.Generator().manual_seed(self.seed)
        train_dl = torch.utils.data.DataLoader(_Chains(self._standardize(Xs), ys), batch_size=self.batch_size,
                                               shuffle=True, collate_fn=_collate, generator=g)
        val_dl = None
        best = KeepBest()
        callbacks: list[Any] = []
        if X_val is not None and y_val is not None:
            Xv, yv = check_xy(X_val, y_val, self.n_features_)
            val_dl = torch.utils.data.DataLoader(_Chains(self._standardize(Xv), yv), batch_size=self.batch_size,
                                                 shuffle=False, collate_fn=_collate)

            callbacks += [best, EarlyStopping("val_spearman", mode="max", patience=self.patience)]
        with _quiet_lightning():
            trainer = L.Trainer(max_epochs=self.max_epochs, accelerator=self.accelerator, devices=1,
                                deterministic=True, logger=False, enable_checkpointing=False,
                                enable_progress_bar=self.progress, enable_model_summary=False, callbacks=callbacks,
                                num_sanity_val_steps=0, fast_dev_run=fast_dev_run)
            trainer.fit(module, train_dl, val_dl)
        if best.state is not None:
            net.load_state_dict(best.state)
        self.net_ = net.cpu().eval()
        self.best_epoch_ = int(best.epoch) if best.state is not None else int(trainer.current_epoch)
        self.best_score_ = float(best.score) if best.state is not None else None
        return self

    @torch.no_grad()
    def predict(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Scores per chain [n_i]; higher = kept longer (runs on CPU, one chain at a time)."""
        self._check_fitted()
        Xs, _ = check_xy(X, n_features=self.n_features_)
        out = []
        for x in self._standardize(Xs):
            xt = torch.from_numpy(x)[None]
            out.append(self.net_(xt, torch.ones(xt.shape[:2], dtype=torch.bool))[0].double().numpy())
        return out

    def save(self, directory: str | Path) -> None:
        """model.safetensors (weights + feature_mean/feature_std) + regressor.json."""
        from safetensors.torch import save_file

        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}
        tensors["feature_mean"] = torch.from_numpy(self.mean_)
        tensors["feature_std"] = torch.from_numpy(self.std_)
        save_file(tensors, str(d / WEIGHTS_FILE))
        write_config(d, self.kind, self.get_params(), {"n_features": self.n_features_,
                                                       "best_epoch": self.best_epoch_,
                                                       "best_score": self.best_score_})

    @classmethod
    def load(cls, directory: str | Path) -> "NeuralRankRegressor":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        d = Path(directory)
        cfg = read_config(d)
        if cfg["kind"] not in KINDS:
            raise RegressorLoadError(f"{d / 'regressor.json'}: kind {cfg['kind']!r} is not a neural regressor")
        path = d / WEIGHTS_FILE
        if not path.is_file():
            raise RegressorLoadError(f"{path}: missing weights file")
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise RegressorLoadError(f"{path}: not a valid safetensors file ({e})") from None
        self = cls(**cfg["params"])
        st = cfg["state"]
        self.n_features_ = int(st["n_features"])
        self.best_epoch_, self.best_score_ = st.get("best_epoch"), st.get("best_score")
        try:
            self.mean_ = tensors.pop("feature_mean").numpy()
            self.std_ = tensors.pop("feature_std").numpy()
            net = self.build_net(len(self.mean_))
            net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")}, strict=True)
        except (KeyError, RuntimeError) as e:
            raise RegressorLoadError(f"{path}: weights do not match regressor.json ({e})") from None
        self.net_ = net.eval()
        return self
