"""Regressors: recover a planted ranking, save/load round trip, no pickle, Lightning fast_dev_run, losses."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from predictor.regressors import REGRESSOR_KINDS, load_regressor, make_regressor
from predictor.regressors.base import RegressorLoadError, mean_chain_spearman
from predictor.regressors.losses import get_loss, listnet_loss, mse_loss, pairwise_logistic_loss

FAST = {"lgbm-regression": {"n_estimators": 150, "min_child_samples": 5},
        "lgbm-lambdarank": {"n_estimators": 150, "min_child_samples": 5},
        "lgbm-xendcg": {"n_estimators": 150, "min_child_samples": 5, "levels": 8},
        "mlp": {"max_epochs": 12, "hidden": 32, "batch_size": 8, "lr": 3e-3},
        "sequence": {"max_epochs": 12, "hidden": 32, "batch_size": 8, "lr": 3e-3}}
FAST["ridge"] = {}
FAST["ensemble"] = {"kinds": ("lgbm-regression", "mlp"),
                    "member_params": {"lgbm-regression": FAST["lgbm-regression"], "mlp": FAST["mlp"]}}
MODEL_FILES = {"ridge": ["model.safetensors"], "lgbm-regression": ["model.txt"], "lgbm-lambdarank": ["model.txt"], "lgbm-xendcg": ["model.txt"], "mlp": ["model.safetensors"],
               "sequence": ["model.safetensors"], "ensemble": ["member0", "member1"]}


def planted(n_chains: int, seed: int, neighbour: bool = False):
    """Chains of random features whose normalized rank is a planted function of columns 0, 1 (and a neighbour)."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n_chains):
        n = int(rng.integers(8, 25))
        x = rng.normal(size=(n, 6)).astype(np.float32)
        s = x[:, 0] - 0.5 * x[:, 1]
        if neighbour:  # a token matters more when its left neighbour has a large column 2
            s = s + 1.5 * np.concatenate([[0.0], x[:-1, 2]])
        X.append(x)
        y.append((rankdata(s) - 1) / (n - 1))
    return X, y


@pytest.fixture(scope="module")
def data():
    return planted(40, 0), planted(10, 1), planted(10, 2)


@pytest.fixture(scope="module")
def fitted(data):
    (Xt, yt), (Xv, yv), _ = data
    return {k: make_regressor(k, seed=0, **FAST[k]).fit(Xt, yt, Xv, yv) for k in REGRESSOR_KINDS}


@pytest.mark.parametrize("kind", REGRESSOR_KINDS)
def test_recovers_planted_ranking(kind, fitted, data):
    _, _, (Xs, ys) = data
    pred = fitted[kind].predict(Xs)
    assert [p.shape for p in pred] == [(len(x),) for x in Xs]
    assert mean_chain_spearman(pred, ys) > 0.8


def test_sequence_model_uses_neighbours():
    (Xt, yt), (Xv, yv), (Xs, ys) = (planted(40, s, neighbour=True) for s in (3, 4, 5))
    kw = dict(FAST["sequence"], max_epochs=20)
    seq = make_regressor("sequence", seed=0, **kw).fit(Xt, yt, Xv, yv)
    mlp = make_regressor("mlp", seed=0, **dict(FAST["mlp"], max_epochs=20)).fit(Xt, yt, Xv, yv)
    assert mean_chain_spearman(seq.predict(Xs), ys) > mean_chain_spearman(mlp.predict(Xs), ys) + 0.05


@pytest.mark.parametrize("kind", REGRESSOR_KINDS)
def test_save_load_roundtrip_identical_without_pickle(kind, fitted, data, tmp_path, monkeypatch):
    _, _, (Xs, _) = data
    reg = fitted[kind]
    reg.save(tmp_path / kind)
    files = sorted(p.name for p in (tmp_path / kind).iterdir())
    assert files == sorted(["regressor.json"] + MODEL_FILES[kind])

    def boom(*a, **k):
        raise AssertionError("loading must never unpickle")

    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(torch, "load", boom)
    loaded = load_regressor(tmp_path / kind)
    assert type(loaded) is type(reg) and loaded.get_params() == reg.get_params()
    for a, b in zip(reg.predict(Xs), loaded.predict(Xs)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["lgbm-regression", "mlp"])
def test_chain_features_roundtrip(kind, data, tmp_path):
    (Xt, yt), (Xv, yv), (Xs, ys) = data
    params = dict(FAST[kind], max_epochs=3) if kind == "mlp" else FAST[kind]
    reg = make_regressor(kind, chain_features="rank", **params).fit(Xt, yt, Xv, yv)
    reg.save(tmp_path)
    for a, b in zip(reg.predict(Xs), load_regressor(tmp_path).predict(Xs)):
        np.testing.assert_array_equal(a, b)
    if kind == "lgbm-regression":
        assert mean_chain_spearman(reg.predict(Xs), ys) > 0.8
        assert len(reg.feature_importance()) == 2 * Xs[0].shape[1]  # raw + chain-relative columns
    with pytest.raises(ValueError, match="chain_features"):
        make_regressor(kind, chain_features="bogus").fit(Xt, yt)


def test_load_errors_name_the_file(fitted, tmp_path):
    with pytest.raises(RegressorLoadError, match="regressor.json"):
        load_regressor(tmp_path)
    fitted["mlp"].save(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(RegressorLoadError, match="model.safetensors"):
        load_regressor(tmp_path / "m")


def test_fit_is_deterministic(data):
    (Xt, yt), (Xv, yv), (Xs, _) = data
    for kind in ("lgbm-lambdarank", "mlp"):
        a = make_regressor(kind, seed=3, **dict(FAST[kind], max_epochs=3) if kind == "mlp" else FAST[kind])
        b = make_regressor(kind, seed=3, **dict(FAST[kind], max_epochs=3) if kind == "mlp" else FAST[kind])
        pa, pb = a.fit(Xt, yt, Xv, yv).predict(Xs), b.fit(Xt, yt, Xv, yv).predict(Xs)
        for u, v in zip(pa, pb):
            np.testing.assert_array_equal(u, v)


def test_input_checks(fitted, data):
    _, _, (Xs, _) = data
    with pytest.raises(ValueError, match="list of per-chain"):
        fitted["lgbm-regression"].predict(np.zeros((3, 6)))
    with pytest.raises(ValueError, match="features"):
        fitted["mlp"].predict([np.zeros((3, 5), np.float32)])
    with pytest.raises(RuntimeError, match="not fitted"):
        make_regressor("sequence").predict(Xs)
    with pytest.raises(ValueError, match="unknown regressor"):
        make_regressor("xgboost")


@pytest.mark.parametrize("kind", ["mlp", "sequence"])
def test_lightning_fast_dev_run(kind, data):
    (Xt, yt), (Xv, yv), _ = data
    reg = make_regressor(kind, hidden=16, loss="listnet").fit(Xt, yt, Xv, yv, fast_dev_run=True)
    assert all(np.isfinite(p).all() for p in reg.predict(Xv))


def test_gru_variant_runs(data):
    (Xt, yt), (Xv, yv), _ = data
    reg = make_regressor("sequence", arch="gru", hidden=16, max_epochs=1).fit(Xt, yt, Xv, yv)
    assert [len(p) for p in reg.predict(Xv)] == [len(x) for x in Xv]


def test_rank_losses_prefer_the_right_order():
    y = torch.tensor([[0.0, 0.5, 1.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    good, bad = torch.tensor([[-1.0, 0.0, 1.0, 9.0]]), torch.tensor([[1.0, 0.0, -1.0, -9.0]])
    for fn in (pairwise_logistic_loss, listnet_loss, mse_loss, get_loss("mse+pairwise")):
        assert fn(good, y, mask) < fn(bad, y, mask)
    # the padded position does not matter
    other = good.clone()
    other[0, 3] = -100.0
    for fn in (pairwise_logistic_loss, listnet_loss, mse_loss):
        assert torch.isclose(fn(good, y, mask), fn(other, y, mask))
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("hinge")


@pytest.mark.parametrize("kind", ["mlp", "lgbm-regression"])
def test_early_stopping_keeps_the_best_validation_model(kind, data):
    """The restored model scores exactly the validation Spearman it was selected for."""
    (X, y), (Xv, yv), _ = data
    params = {**FAST[kind], "seed": 3}
    if kind == "mlp":
        params.update(max_epochs=6, patience=10, lr=1e-2)
    reg = make_regressor(kind, **params).fit(X, y, Xv, yv)
    assert reg.best_score_ == pytest.approx(mean_chain_spearman(reg.predict(Xv), yv), abs=1e-6)


def test_ensemble_averages_member_ranks(fitted, data):
    from scipy.stats import rankdata

    from predictor.regressors.ensemble import EnsembleRegressor

    _, _, (Xs, ys) = data
    members = [fitted["lgbm-regression"], fitted["mlp"]]
    ens = EnsembleRegressor.from_fitted(members)
    assert ens.kinds == ("lgbm-regression", "mlp")
    unit = lambda p: (rankdata(p) - 1) / (len(p) - 1)  # noqa: E731
    for i, got in enumerate(ens.predict(Xs)):
        np.testing.assert_allclose(got, (unit(members[0].predict(Xs)[i]) + unit(members[1].predict(Xs)[i])) / 2)
    with pytest.raises(ValueError, match="different feature counts"):
        other = make_regressor("lgbm-regression", **FAST["lgbm-regression"]).fit([x[:, :5] for x in Xs], ys)
        EnsembleRegressor.from_fitted([members[0], other])


def test_lightning_epoch_bars_go_to_stderr_not_stdout(data, capsys):
    (Xt, yt), (Xv, yv), _ = data
    make_regressor("mlp", seed=0, **dict(FAST["mlp"], max_epochs=2, progress=True)).fit(Xt, yt, Xv, yv)
    out, err = capsys.readouterr()
    assert "Epoch" in err and "Epoch" not in out and out == ""


def test_lambdarank_levels_beyond_lightgbms_default_label_gain(data):
    """31 is only the default label_gain's length: with our own label_gain, 100 levels train, and the
    relevance labels use all of them (floor(y * 99))."""
    (Xt, yt), (Xv, yv), (Xs, ys) = data
    reg = make_regressor("lgbm-lambdarank", seed=0, levels=100, **FAST["lgbm-lambdarank"])
    labels = reg._labels(yt)
    assert labels.max() == 99 and labels.min() == 0 and len(np.unique(labels)) > 31
    reg.fit(Xt, yt, Xv, yv)
    assert mean_chain_spearman(reg.predict(Xs), ys) > 0.8
    from predictor.regressors.lgbm import LGBMRankRegressor

    for objective, bad in (("lambdarank", 1), ("lambdarank", 1001), ("rank_xendcg", 32), ("regression", True)):
        with pytest.raises(ValueError, match="levels"):
            LGBMRankRegressor(objective=objective, levels=bad)


def test_cli_regressor_param_reaches_the_regressor_and_bad_names_are_refused():
    from predictor.commands.train import parse_regressor_param

    assert parse_regressor_param("lgbm-lambdarank:levels=100") == ("lgbm-lambdarank", "levels", 100)
    assert parse_regressor_param("sequence:arch=gru") == ("sequence", "arch", "gru")
    for bad in ("levels=100", "lgbm-lambdarank:levels", "lgbm-lambdarank:=3"):
        with pytest.raises(ValueError, match="KIND:NAME=VALUE"):
            parse_regressor_param(bad)
    import argparse

    from predictor.commands.train import add_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = config_from_args(p.parse_args(["--regressor-param", "lgbm-xendcg:levels=8",
                                         "--regressor-param", "lgbm-xendcg:num_leaves=7"]))
    assert cfg.params["lgbm-xendcg"] == {"levels": 8, "num_leaves": 7}
    with pytest.raises(ValueError, match="takes no argument 'levelz'"):
        config_from_args(p.parse_args(["--regressor-param", "lgbm-lambdarank:levelz=8"]))
    with pytest.raises(ValueError, match="unknown regressor"):
        config_from_args(p.parse_args(["--regressor-param", "xgb:levels=8"]))
