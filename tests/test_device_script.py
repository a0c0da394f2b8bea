"""benchmarks/device/gpu_run.py (the GPU run of issue 28 item 5), checked on the CPU with a tiny random LM."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_run():
    spec = importlib.util.spec_from_file_location("gpu_run", ROOT / "benchmarks" / "device" / "gpu_run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_parts_a_and_b_measure_both_modes_and_agree(gpu_run, model_dir, tmp_path):
    out = tmp_path / "out"
    rc = gpu_run.main(["--smoke", "--device", "cpu", "--model-config", model_dir, "--predictor", "universal",
                       "--dtype", "float64", "--parts", "a,b", "--predict-lengths", "12,24", "--label-lengths", "5,8",
                       "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "gpu_run.json").read_text())
    assert res["errors"] == []
    assert res["environment"]["device_name"].startswith("CPU")
    assert res["weights"].startswith("random")
    assert "label_long" not in res  # part c not asked for

    rows = res["predict"]["rows"]
    assert [r["reasoning_tokens"] for r in rows] == [12, 24]  # chains cut to exactly these lengths
    for r in rows:
        assert r["chains"] == 3 and r["same_ranks"] == 3 and r["max_rank_diff"] == 0  # batched == one at a time
        assert r["single_s"] > 0 and r["batched_s"] > 0
        assert r["speedup"] == pytest.approx(r["single_s"] / r["batched_s"])
        assert r["batched_chains_per_s"] == pytest.approx(3 / r["batched_s"])

    speed = res["label_speed"]["rows"]
    assert {(r["mode"], r["reasoning_tokens"]) for r in speed} == {(m, n) for m in ("exact", "budget", "lazy")
                                                                    for n in (5, 8)}
    for r in speed:
        assert r["lm_tokens"] > 0 and r["seconds"] > 0
        assert r["lm_tokens_per_s"] == pytest.approx(r["lm_tokens"] / r["seconds"])
        if r["mode"] != "exact":
            assert r["share_of_exact_lm_tokens"] > 0
    exact = {r["reasoning_tokens"]: r["lm_tokens"] for r in speed if r["mode"] == "exact"}
    assert exact[8] > exact[5]  # the search's cost grows with the chain

    md = (out / "gpu_run.md").read_text()
    assert "## a. predict_ranks" in md and "## b. Labeling throughput" in md
    assert "--parts a,b" in md and "| exact | 8 |" in md


def test_part_c_is_skipped_without_real_weights(gpu_run, model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_run, "default_model", lambda: None)  # no .device/model here, whatever the checkout has
    out = tmp_path / "out"
    rc = gpu_run.main(["--device", "cpu", "--model-config", model_dir, "--predictor", "universal", "--parts", "c",
                       "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "gpu_run.json").read_text())
    assert "real weights" in res["label_long"]["skipped"]
    assert not (out / "labeled.jsonl").exists()
    assert "Skipped: no --model folder" in (out / "gpu_run.md").read_text()


def test_plan_round_keeps_every_process_within_the_time(gpu_run):
    assert gpu_run.plan_round([1, 1, 1, 1], procs=2, seconds_per_cost=1.0, available=2.0) == 4
    assert gpu_run.plan_round([1, 1, 1, 1], procs=2, seconds_per_cost=1.0, available=1.5) == 2
    assert gpu_run.plan_round([1, 3, 1, 1], procs=2, seconds_per_cost=1.0, available=3.5) == 3  # shard 1: 3 + 1 > 3.5
    assert gpu_run.plan_round([5], procs=4, seconds_per_cost=1.0, available=4.0) == 0  # not even one chain fits
    assert gpu_run.plan_round([5, 5], procs=1, seconds_per_cost=None, available=0.0) == 2  # no speed known: all


def test_merge_parts_dedupes_orders_and_drops_cut_lines(gpu_run, tmp_path):
    def rec(cid: str) -> str:
        return json.dumps({"id": cid, "order": [0], "ranks": [1]}) + "\n"

    (tmp_path / "part-r1-0of2.jsonl").write_text(rec("b") + rec("c") + '{"id": "x", "ord')  # a line cut by a kill
    (tmp_path / "part-r1-1of2.jsonl").write_text(rec("a") + rec("b"))
    merged = gpu_run.merge_parts(tmp_path, tmp_path / "labeled.jsonl", order=["a", "b", "c"])
    assert [r["id"] for r in merged] == ["a", "b", "c"]
    lines = (tmp_path / "labeled.jsonl").read_text().splitlines()
    assert [json.loads(ln)["id"] for ln in lines] == ["a", "b", "c"]
    assert gpu_run.labeled_ids_all(tmp_path) == {"a", "b", "c"}
