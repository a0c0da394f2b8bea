"""benchmarks/frontier_paired.py: pooling frontier runs and pairing methods chain by chain."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import frontier_paired  # noqa: E402


def _run(path, chains: dict[str, dict[str, float]]):
    rows = {m: [{"id": i, "spearman": v, "share": 0.1, "seconds": 1.0, "regret": [float(v)]} for i, v in per.items()]
            for m, per in chains.items()}
    path.write_text(json.dumps({"chains": rows}))
    return str(path)


def test_pairs_methods_of_two_runs_on_the_chains_of_one(tmp_path, capsys):
    a = _run(tmp_path / "a.json", {"one-pass": {"x": 0.5, "y": 0.6, "z": 0.1}, "lazy-0.1": {"x": 0.4, "y": 0.4, "z": 0.4}})
    b = _run(tmp_path / "b.json", {"prio4": {"x": 0.7, "y": 0.5}})
    out = tmp_path / "o.txt"
    assert frontier_paired.main(["--runs", a, b, "--on", "prio4", "--pairs", "prio4-one-pass,prio4-lazy-0.1",
                                 "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("2 chains (those of prio4)")  # z is not a prio4 chain: left out everywhere
    assert "one-pass         0.550" in text  # mean of x and y only
    assert "prio4 - one-pass: +0.050" in text and "(1/2)" in text
    assert "prio4 - lazy-0.1: +0.200" in text and "(2/2)" in text


def test_unknown_pairs_and_methods_are_refused(tmp_path):
    a = _run(tmp_path / "a.json", {"one-pass": {"x": 0.5}, "prio4": {"x": 0.6}})
    with pytest.raises(SystemExit, match="not METHOD-METHOD"):
        frontier_paired.main(["--runs", a, "--on", "prio4", "--pairs", "prio4-sc3"])
    with pytest.raises(SystemExit, match="no such method"):
        frontier_paired.main(["--runs", a, "--on", "sc3"])
