"""QA of issue 31's options: --regressor-param checked before any data or LM is read, --config lists of a
repeatable option, numpy integer levels, domain_crossfit's argument errors (no traceback)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _config(argv):
    from predictor.cli import build_parser
    from predictor.commands.train import config_from_args

    return config_from_args(build_parser().parse_args(["train", *argv]))


@pytest.mark.parametrize("param, msg", [
    ("lgbm-lambdarank:levels=abc", "levels=abc: expected an integer"),
    ("lgbm-lambdarank:levels=2.5", "expected an integer"),
    ("lgbm-lambdarank:levels=true", "expected an integer"),
    ("lgbm-lambdarank:seed=\"x\"", "seed=x: expected an integer"),
    ("lgbm-lambdarank:levels=5000", "--regressor-param lgbm-lambdarank: levels must be an integer in 2..1000"),
    ("lgbm-xendcg:levels=100", "levels must be an integer in 2..31"),
    ("mlp:hidden=\"wide\"", "hidden=wide: expected an integer"),  # checked even for a kind not trained
])
def test_bad_regressor_params_fail_before_any_data_is_read(param, msg):
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace(".", r"\.")):
        _config(["--data", "missing.jsonl", "--regressors", "lgbm-lambdarank,lgbm-xendcg",
                 "--regressor-param", param])


def test_good_regressor_params_and_cli_exit_code(tmp_path, capsys):
    from predictor.cli import main

    _config(["--regressors", "lgbm-regression", "--regressor-param", "mlp:hidden=64"])
    assert "mlp:hidden is unused: mlp is not among --regressors" in capsys.readouterr().err

    cfg = _config(["--regressors", "lgbm-lambdarank", "--regressor-param", "lgbm-lambdarank:levels=1000",
                   "--regressor-param", "lgbm-lambdarank:learning_rate=1"])
    assert cfg.params == {"lgbm-lambdarank": {"levels": 1000, "learning_rate": 1}}
    # the error comes before the (missing) data file is looked at
    assert main(["train", "--data", str(tmp_path / "missing.jsonl"), "--regressors", "lgbm-regression",
                 "--regressor-param", "lgbm-regression:n_estimators=\"many\"", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "predictor train: error: --regressor-param lgbm-regression:n_estimators" in err
    assert "no such ranked file" not in err


def test_config_list_of_regressor_params_gives_the_option_once_per_item(tmp_path):
    from predictor.commands.train import config_argv

    path = tmp_path / "c.json"
    path.write_text(json.dumps({"regressors": ["lgbm-lambdarank"], "domain-data": ["a.jsonl", "b.jsonl"],
                                "regressor-param": ["lgbm-lambdarank:levels=100", "lgbm-lambdarank:num_leaves=7"]}))
    assert config_argv(str(path)) == ["--regressors", "lgbm-lambdarank", "--domain-data", "a.jsonl", "--domain-data", "b.jsonl",
                                      "--regressor-param", "lgbm-lambdarank:levels=100",
                                      "--regressor-param", "lgbm-lambdarank:num_leaves=7"]
    cfg = _config(["--config", str(path)])
    assert cfg.params == {"lgbm-lambdarank": {"levels": 100, "num_leaves": 7}}
    assert cfg.domain_data == ("a.jsonl", "b.jsonl")


def test_numpy_integer_levels_are_accepted_and_saved_as_int():
    from predictor.regressors import make_regressor

    reg = make_regressor("lgbm-lambdarank", levels=np.int64(100))
    assert reg.levels == 100 and type(reg.levels) is int
    json.dumps(reg.get_params())


@pytest.mark.parametrize("args, msg", [
    (["--regressor", "foo", "--domain-data", "x.jsonl"], "--regressor 'foo'"),
    (["--regressor", "lgbm-lambdarank", "--regressor-param", "lgbm-lambdarank:levels=5000",
      "--domain-data", "x.jsonl"], "levels must be an integer"),
    (["--data", "{main}", "--domain-data", "{missing}"], "main.jsonl:1: missing field"),  # a bad ranked file
    (["--domain-data", "x.jsonl", "--json", "{tmp}"], "is a directory"),  # checked before any work
    (["--data", "{main}", "--domain-data", "x.jsonl", "--ship", "--no-ensemble"],
     "--no-ensemble, --ship do not apply to the cross-fit"),
])
def test_domain_crossfit_argument_errors_are_clean(args, msg, tmp_path):
    main = tmp_path / "main.jsonl"
    main.write_text("".join(json.dumps({"id": f"c{i}"}) + "\n" for i in range(3)))
    args = [a.format(main=main, missing=tmp_path / "missing.jsonl", tmp=tmp_path) for a in args]
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "domain_crossfit.py"), *args],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr


def test_out_of_range_lightgbm_params_and_fixed_params_raise_value_errors():
    from predictor.regressors import make_regressor

    rng = np.random.default_rng(0)
    X = [rng.normal(size=(10, 3)).astype(np.float32) for _ in range(4)]
    y = [np.linspace(0, 1, 10) for _ in range(4)]
    with pytest.raises(ValueError, match="LightGBM refused"):
        make_regressor("lgbm-regression", num_leaves=0, n_estimators=5).fit(X, y)
    with pytest.raises(ValueError, match="fixes objective='rank_xendcg'"):
        make_regressor("lgbm-xendcg", objective="regression")


def test_domain_data_path_with_a_comma_is_read_whole_when_the_file_exists(tmp_path):
    odd = tmp_path / "aqua,v2.jsonl"
    odd.write_text("")
    assert _config(["--domain-data", str(odd)]).domain_data == (str(odd),)
    other = tmp_path / "b.jsonl"
    assert _config(["--domain-data", f"{odd.parent / 'a.jsonl'},{other}"]).domain_data == (
        str(tmp_path / "a.jsonl"), str(other))
    # repeated, and from a --config list, each path whole (commas included)
    assert _config(["--domain-data", str(odd), "--domain-data", str(other)]).domain_data == (str(odd), str(other))
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"domain-data": [str(odd), str(other)]}))
    assert _config(["--config", str(cfg)]).domain_data == (str(odd), str(other))
