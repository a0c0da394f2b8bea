"""The runtime settled once (predictor/runtime.py) and the command-line helpers around it."""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import pytest
import torch

from predictor import runtime
from predictor.cli import build_parser
from predictor.commands.common import comma_list, config_defaults

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    settled = runtime._settled
    yield
    torch.set_num_threads(n)
    runtime._settled = settled


def test_set_threads_explicit_and_settled_once(restore_threads, monkeypatch):
    assert runtime.set_threads(1) == 1 and torch.get_num_threads() == 1
    # without a count, the count chosen before stays (no re-measuring of the load in one process)
    monkeypatch.setattr(runtime, "default_threads", lambda: pytest.fail("chose again"))
    assert runtime.set_threads(None) == 1
    with pytest.raises(ValueError):
        runtime.set_threads(-1)


def test_default_threads_follows_idle_cores(restore_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 2)
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (1.2, 0.0, 0.0))
    assert runtime.idle_cores() == 1
    torch.set_num_threads(2)
    assert runtime.default_threads() == 1
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (0.1, 0.0, 0.0))
    assert runtime.default_threads() == 2
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (7.0, 0.0, 0.0))
    assert runtime.default_threads() == 1  # never 0
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # an explicit environment wins
    assert runtime.default_threads() == torch.get_num_threads()


def test_use_matmul_checks_its_choice():
    with pytest.raises(ValueError):
        runtime.use_matmul(None, "mkl")


def _parse(argv: str) -> argparse.Namespace:
    return build_parser().parse_args(shlex.split(argv))


@pytest.mark.parametrize("command", ["predict --in a --out b", "prune --in a --out b --keep 0.5",
                                     "show --in a --out b", "evaluate --data a --out b"])
def test_matmul_deprecated_where_it_never_acted(command, capsys):
    args = _parse(f"{command} --matmul default")
    assert args.matmul is None
    assert "--matmul is deprecated here and ignored" in capsys.readouterr().err
    assert "--matmul" not in build_parser()._subparsers._group_actions[0].choices[command.split()[0]].format_help()


@pytest.mark.parametrize("command", ["label --in a --out b", "featurize --in a",
                                     "verify-ranked f", "label-states --ranked a --out b --predictor p"])
def test_matmul_where_it_acts(command):
    assert _parse(command).matmul == "onednn"
    assert _parse(f"{command} --matmul default").matmul == "default"


def test_threads_argument():
    assert _parse("label --in a --out b").threads is None
    assert _parse("label --in a --out b --threads 2").threads == 2
    with pytest.raises(SystemExit):
        _parse("label --in a --out b --threads 0")
    assert _parse("demo").threads == 1  # DemoConfig's


def test_comma_list():
    assert comma_list(float)("0, 0.25,,0.5") == [0.0, 0.25, 0.5]
    assert comma_list(int)("2,5,10") == [2, 5, 10]
    assert comma_list()(" a , b,") == ["a", "b"]
    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated integers"):
        comma_list(int)("2,x")


def test_train_defaults_come_from_train_config():
    from predictor.training import TrainConfig

    args = _parse("train")
    d = config_defaults(TrainConfig)
    for opt, field in [("data", "data"), ("out", "out"), ("objective", "objective"), ("regressors", "regressors"),
                       ("states", "states"), ("split", "fractions"), ("seed", "seed"), ("refresh", "refresh"),
                       ("ship_name", "ship_name")]:
        assert getattr(args, opt) == d[field], opt
    from predictor.commands.train import config_from_args

    assert config_from_args(args) == TrainConfig(progress=True)


def test_shipped_training_config_is_make_train():
    """configs/smollm2-joint.json parses to the shipped run's command line."""
    make_args = ("--data data/ranked/gsm8k-smollm2-joint.jsonl "
                 "--domain-data data/ranked/aqua/aqua-smollm2-joint.jsonl "
                 "--domain-data data/ranked/strategyqa/strategyqa-smollm2-joint.jsonl "
                 "--domain-data data/ranked/math/math-smollm2-joint.jsonl "
                 "--extra-train data/ranked/variant-eos-im_start/gsm8k-smollm2-joint.jsonl "
                 "--groups attention,probe,logits,position,lexical,hidden,local "
                 "--regressors lgbm-regression,lgbm-lambdarank,sequence --regressor-param lgbm-lambdarank:levels=100 "
                 "--threads 1 --out runs/train")
    a = vars(_parse("train --config configs/smollm2-joint.json"))
    b = vars(_parse(f"train {make_args}"))
    assert a == b
    assert "train.py --config configs/smollm2-joint.json" in (ROOT / "Makefile").read_text()
    # options after --config override it
    assert _parse("train --config configs/smollm2-joint.json --out elsewhere").out == "elsewhere"
    assert json.loads((ROOT / "configs/smollm2-joint.json").read_text())["threads"] == 1


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(SystemExit):
        _parse(f"train --config {bad}")
    with pytest.raises(SystemExit):
        _parse(f"train --config {tmp_path / 'missing.json'}")


def test_prune_cli_defaults_are_prune_options_defaults():
    from predictor.pruning import PruneOptions

    args = _parse("prune --in a --out b --keep 0.5")
    d = config_defaults(PruneOptions)
    for name in ("gap_cost", "position_weight", "protect", "step_aware", "refresh"):
        assert getattr(args, name) == d[name], name
    assert _parse("predict --in a --out b").refresh == d["refresh"]
