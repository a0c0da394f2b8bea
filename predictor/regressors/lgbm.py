"""LightGBM regressors of the greedy rank: pointwise regression or a listwise ranking objective.

- objective="regression": L2 regression on the normalized rank (1 = kept longest).
- objective="lambdarank": LambdaRank (Burges, "From RankNet to LambdaRank to LambdaMART", 2010)
  via LightGBM's own objective; each chain (or pruned state of a chain) is one query group, the
  relevance label of a token is floor(normalized_rank * (levels - 1)) with a linear label_gain
  (0, 1, ..., levels - 1) and truncation at the longest group, so the whole order counts. 31 levels
  is only the length of LightGBM's *default* label_gain; with our own label_gain any number of
  levels trains (up to MAX_LEVELS here: chains longer than that share levels).
- objective="rank_xendcg": XE-NDCG (Bruch, "An Alternative Cross Entropy Loss for Learning-to-Rank",
  WWW 2021) via LightGBM's `rank_xendcg`, same groups and labels; its gain is 2^label, so few
  levels (MAX_XENDCG_LEVELS at most) keep the lower levels from vanishing.

Early stopping (when a validation set is given) monitors the mean per-chain Spearman correlation
on the validation chains, the metric the predictor is selected and judged on. The model is saved
as LightGBM's text format (model.txt, best iteration only) plus regressor.json; never pickled.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import (RankRegressor, RegressorLoadError, add_chain_features, check_xy, mean_chain_spearman, read_config,
                   split_rows, write_config)

MODEL_FILE = "model.txt"
OBJECTIVES = ("regression", "lambdarank", "rank_xendcg")
KINDS = {"regression": "lgbm-regression", "lambdarank": "lgbm-lambdarank", "rank_xendcg": "lgbm-xendcg"}
RANKING = ("lambdarank", "rank_xendcg")  # one query group per chain, integer relevance labels
MAX_LEVELS = 1000
MAX_XENDCG_LEVELS = 31  # 2^30 is the largest gain before float32 sums lose the low levels entirely


class LGBMRankRegressor(RankRegressor):
    """Gradient-boosted trees on per-token features; `predict` returns a score per token [n_i]."""

    fitted_attr = "booster_"

    def __init__(self, objective: str = "regression", n_estimators: int = 2000, learning_rate: float = 0.03,
                 num_leaves: int = 15, min_child_samples: int = 20, feature_fraction: float = 0.3,
                 bagging_fraction: float = 0.8, reg_lambda: float = 1.0, early_stopping_rounds: int = 100,
                 levels: int = 31, chain_features: str = "none", seed: int = 0, n_jobs: int = 1,
                 progress: bool = False):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        cap = MAX_XENDCG_LEVELS if objective == "rank_xendcg" else MAX_LEVELS
        if isinstance(levels, bool) or not isinstance(levels, numbers.Integral) or not 2 <= levels <= cap:
            raise ValueError(f"levels must be an integer in 2..{cap} for objective {objective!r}, got {levels!r}")
        levels = int(levels)  # numpy integers too; saved as JSON
        self.objective = objective
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.levels = levels
        self.chain_features = chain_features  # "rank"/"zscore": append within-chain normalized columns
        self.seed = seed
        self.n_jobs = n_jobs
        self.progress = progress

    @property
    def kind(self) -> str:
        return KINDS[self.objective]

    def _lgb_params(self, max_group: int) -> dict[str, Any]:
        p: dict[str, Any] = {
            "objective": self.objective, "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples, "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction, "bagging_freq": 1 if self.bagging_fraction < 1 else 0,
            "lambda_l2": self.reg_lambda, "seed": self.seed, "num_threads": self.n_jobs, "deterministic": True,
            "force_row_wise": True, "verbosity": -1, "metric": "None",
        }
        if self.objective == "lambdarank":
            p["label_gain"] = list(range(self.levels))
            p["lambdarank_truncation_level"] = max_group
        if self.objective == "rank_xendcg":
            p["objective_seed"] = self.seed
        return p

    def _labels(self, y: list[np.ndarray]) -> np.ndarray:
        flat = np.concatenate(y)
        if self.objective in RANKING:  # integer relevance 0..levels-1
            return np.floor(np.clip(flat, 0, 1) * (self.levels - 1) + 1e-9).astype(np.int32)
        return flat

    def _dataset(self, lgb, X: list[np.ndarray], y: list[np.ndarray], names: list[str] | None, ref=None):
        ds = lgb.Dataset(np.concatenate(X), label=self._labels(y), feature_name=names or "auto",
                         reference=ref, free_raw_data=True, params={"verbosity": -1})
        if self.objective in RANKING:
            ds.set_group([len(x) for x in X])
        return ds

    def fit(self, X: Sequence[np.ndarray], y: Sequence[np.ndarray], X_val: Sequence[np.ndarray] | None = None,
            y_val: Sequence[np.ndarray] | None = None, feature_names: list[str] | None = None) -> "LGBMRankRegressor":
        """Train on chains X [n_i, F] with normalized ranks y [n_i]; early-stop on validation Spearman."""
        import lightgbm as lgb

        Xs, ys = check_xy(X, y)
        n_raw = Xs[0].shape[1]
        Xs = add_chain_features(Xs, self.chain_features)
        names = [n.replace(" ", "_") for n in feature_names] if feature_names else None
        if names and self.chain_features != "none":
            names = names + [f"chain_{self.chain_features}.{n}" for n in names]
        train = self._dataset(lgb, Xs, ys, names)
        callbacks, valid_sets, feval = [], [], None
        if X_val is not None and y_val is not None:
            Xv, yv = check_xy(X_val, y_val, n_raw)
            Xv = add_chain_features(Xv, self.chain_features)
            valid_sets = [self._dataset(lgb, Xv, yv, names, ref=train)]

            def feval(preds, _data):  # the selection metric, higher is better
                return "chain_spearman", mean_chain_spearman(split_rows(preds, Xv), yv), True

            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.n_estimators, desc=f"{self.kind}", unit="tree", leave=False, dynamic_ncols=True)

            def _tick(env):
                bar.update(1)
                if env.evaluation_result_list:
                    bar.set_postfix(val_spearman=f"{env.evaluation_result_list[0][2]:.3f}")

            callbacks.append(_tick)
        max_group = max(len(x) for x in Xs + (list(check_xy(X_val)[0]) if X_val is not None else []))
        try:
            booster = lgb.train(self._lgb_params(max_group), train, num_boost_round=self.n_estimators,
                                valid_sets=valid_sets, valid_names=["val"] if valid_sets else None,
                                feval=feval, callbacks=callbacks)
        except lgb.basic.LightGBMError as e:  # e.g. num_leaves=0, learning_rate=-1: a bad parameter, said plainly
            raise ValueError(f"{self.kind}: LightGBM refused the parameters: {e}") from None
        finally:
            if bar is not None:
                bar.close()
        self.booster_ = booster
        self.n_features_ = n_raw
        self.best_iteration_ = int(booster.best_iteration or booster.current_iteration())
        score = booster.best_score.get("val", {}).get("chain_spearman") if valid_sets else None
        self.best_score_ = None if score is None else float(score)
        return self

    def predict(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Scores per chain [n_i]; higher = kept longer."""
        self._check_fitted()
        Xs, _ = check_xy(X, n_features=self.n_features_)
        Xs = add_chain_features(Xs, self.chain_features)
        flat = self.booster_.predict(np.concatenate(Xs), num_iteration=self.best_iteration_)
        return split_rows(np.asarray(flat), Xs)

    def feature_importance(self, importance_type: str = "gain") -> np.ndarray:
        """Total gain (or split count) per model column [F] ([2F] with chain_features: raw, then relative)."""
        self._check_fitted()
        return np.asarray(self.booster_.feature_importance(importance_type, iteration=self.best_iteration_))

    def save(self, directory: str | Path) -> None:
        """model.txt (LightGBM text format, best iteration only) + regressor.json."""
        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(d / MODEL_FILE), num_iteration=self.best_iteration_)
        write_config(d, self.kind, self.get_params(), {"n_features": self.n_features_,
                                                       "best_iteration": self.best_iteration_,
                                                       "best_score": self.best_score_})

    @classmethod
    def load(cls, directory: str | Path) -> "LGBMRankRegressor":
        import lightgbm as lgb

        d = Path(directory)
        cfg = read_config(d)
        if cfg["kind"] not in KINDS.values():
            raise RegressorLoadError(f"{d / 'regressor.json'}: kind {cfg['kind']!r} is not a LightGBM regressor")
        path = d / MODEL_FILE
        if not path.is_file():
            raise RegressorLoadError(f"{path}: missing LightGBM model file")
        try:
            booster = lgb.Booster(model_file=str(path))
        except lgb.basic.LightGBMError as e:
            raise RegressorLoadError(f"{path}: not a valid LightGBM text model ({e})") from None
        self = cls(**cfg["params"])
        self.booster_ = booster
        st = cfg["state"]
        self.n_features_ = int(st["n_features"])
        if booster.num_feature() != self.n_features_ * (1 if self.chain_features == "none" else 2):
            raise RegressorLoadError(f"{path}: model has {booster.num_feature()} features, regressor.json says "
                                     f"{self.n_features_}")
        self.best_iteration_ = booster.current_iteration()  # the file holds the best iteration's trees only
        self.best_score_ = st.get("best_score")
        return self
