"""`--engine ray`: same records as the local engine, atomic parts, resume after killed workers/drivers.

One local Ray cluster with 2 CPUs is shared by the module; skipped if Ray Data is not installed
(extra predictor[ray], part of the test extra)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from predictor.cli import main  # noqa: E402
from predictor.engines.parts import merge_records  # noqa: E402
from predictor.engines.ray_data import plan_workers  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# short chains: the exact search on the tiny model takes well under a second each
# odd chains are longer (--max-tokens) and carry extra fields (passed through to predict/prune output)
CHAINS = [{"id": f"k{i}", "question": f"What is {i} + {i + 1}?",
           "reasoning": f"{i} + {i + 1} = {2 * i + 1}." + (" So it is." if i % 2 else ""), "answer": str(2 * i + 1),
           **({"source": "test", "meta": {"i": i}} if i % 2 else {})}
          for i in range(8)]
EMPTY = {"id": "empty", "question": "q", "reasoning": " ", "answer": "1"}


@pytest.fixture(scope="module")
def cluster():
    """A local 2-CPU Ray cluster shared by the module; its GCS address for driver subprocesses.

    Ray's memory monitor is off: it kills workers when the *machine* is over 95% memory, which other
    processes on a shared test machine cause (the tiny model's workers need little); the kernel's
    OOM killer still guards the machine."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _system_config={"memory_monitor_refresh_ms": 0})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def chains_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("chains") / "chains.jsonl"
    p.write_text("".join(json.dumps(c) + "\n" for c in CHAINS[:4] + [EMPTY] + CHAINS[4:]))
    return p


@pytest.fixture(scope="module")
def local_labels(tmp_path_factory, chains_file, model_dir):
    out = tmp_path_factory.mktemp("local") / "local.jsonl"
    assert main(["label", "--in", str(chains_file), "--out", str(out), "--model", model_dir, "--threads", "1"]) == 0
    return read_lines(out)


def read_lines(path) -> list[dict]:
    text = Path(path).read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # raises on a truncated line


def untimed(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_label_ray_two_workers_equals_local(cluster, chains_file, model_dir, local_labels, tmp_path, capsys):
    out = tmp_path / "ray.jsonl"
    argv = ["label", "--in", str(chains_file), "--out", str(out), "--model", model_dir,
            "--engine", "ray", "--workers", "2"]
    assert main(argv) == 0
    recs = read_lines(out)
    assert [r["id"] for r in recs] == [c["id"] for c in CHAINS]  # input order, the empty chain skipped
    assert untimed(recs) == untimed(local_labels)  # ranks, order, trajectory, ids: all identical
    err = capsys.readouterr().err
    assert "9 chains, 0 already done, 9 to do" in err and "label (ray, 2 workers)" in err
    assert "skipped 1 chain(s): empty reasoning" in err
    assert not (tmp_path / "ray.jsonl.parts").exists()
    # other settings on the same output are refused before any work (resume: the kill test below)
    assert main(argv + ["--stride", "2"]) == 2
    assert f"{out}:1: field 'stride' is 1 but this run uses 2" in capsys.readouterr().err


def test_predict_and_prune_ray_equal_local(cluster, chains_file, model_dir, tmp_path, capsys):
    from predictor.chains import chain_hash

    # --keep-tokens 2 with protected numbers: every chain keeps more than its budget (its 3+ number tokens)
    for cmd, extra in (("predict", ["--refresh", "2"]), ("prune", ["--keep-tokens", "2", "--protect", "numbers"])):
        base = [cmd, "--in", str(chains_file), "--scorer", "surprisal", "--model", model_dir, *extra]
        assert main(base + ["--out", str(tmp_path / f"{cmd}-local.jsonl")]) == 0
        err_local = capsys.readouterr().err
        assert main(base + ["--out", str(tmp_path / f"{cmd}-ray.jsonl"), "--engine", "ray", "--workers", "2"]) == 0
        err_ray = capsys.readouterr().err
        local, remote = read_lines(tmp_path / f"{cmd}-local.jsonl"), read_lines(tmp_path / f"{cmd}-ray.jsonl")
        assert len(local) == len(CHAINS) and remote == local  # fields, their order, values: identical
        assert [r["chain_hash"] for r in remote] == [chain_hash(c["question"], c["reasoning"], c["answer"])
                                                     for c in CHAINS]
        assert [(r.get("source"), r.get("meta")) for r in remote] == [(c.get("source"), c.get("meta")) for c in CHAINS]
        if cmd == "prune":
            assert all(r["budget"] == 2 < len(r["kept"]) for r in remote)
            note = f"{len(CHAINS)} chain(s) kept more tokens than the budget"
            assert note in err_local and note in err_ray


def test_label_ray_max_tokens_skips_like_local(cluster, chains_file, model_dir, tokenizer, local_labels, tmp_path,
                                               capsys):
    from predictor.chains import Chain
    from predictor.layout import encode_chain

    n = {c["id"]: encode_chain(tokenizer, Chain.from_mapping(c)).n for c in CHAINS}
    limit = min(n[c["id"]] for c in CHAINS if c.get("source")) - 1  # every longer (odd) chain is over it
    short = [c["id"] for c in CHAINS if n[c["id"]] <= limit]
    assert 0 < len(short) < len(CHAINS)
    out = tmp_path / "m.jsonl"
    assert main(["label", "--in", str(chains_file), "--out", str(out), "--model", model_dir, "--engine", "ray",
                 "--workers", "2", "--max-tokens", str(limit)]) == 0
    err = capsys.readouterr().err
    skipped = len(CHAINS) - len(short)
    assert f"skipped {skipped} chain(s): more reasoning tokens than --max-tokens" in err
    assert f"more than --max-tokens {limit}" in err
    assert untimed(read_lines(out)) == untimed([r for r in local_labels if r["id"] in short])


def test_ray_refuses_to_resume_records_of_changed_chains(cluster, chains_file, model_dir, local_labels, tmp_path,
                                                         capsys):
    """A record in OUT or in a part whose input chain changed since is refused before any work."""
    changed = tmp_path / "changed.jsonl"
    edited = [{**c, "reasoning": c["reasoning"] + " Done."} if c["id"] == "k1" else c for c in CHAINS]
    changed.write_text("".join(json.dumps(c) + "\n" for c in edited))
    # label: the record in OUT (line 2: k1), then the same record in a part file
    out = tmp_path / "l.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in local_labels[:2]))
    argv = ["label", "--in", str(changed), "--out", str(out), "--model", model_dir, "--engine", "ray"]
    assert main(argv) == 2
    assert f"{out}:2: the record of ('k1', 'joint') was written for other content" in capsys.readouterr().err
    out2, parts = tmp_path / "l2.jsonl", tmp_path / "l2.jsonl.parts"
    parts.mkdir()
    part = parts / "part-1-x.jsonl"
    part.write_text("".join(json.dumps(r) + "\n" for r in local_labels[:2]))
    assert main(argv[:4] + [str(out2)] + argv[5:]) == 2
    err = capsys.readouterr().err
    assert f"{part}:2: the record of ('k1', 'joint') was written for other content" in err
    assert f"delete {out2} and {parts}" in err and not out2.exists() and part.is_file()
    # predict: records with a chain_hash; and a record without one (written before hashes) is refused too
    base = ["predict", "--in", str(chains_file), "--scorer", "position", "--model", model_dir]
    out3 = tmp_path / "p.jsonl"
    assert main(base + ["--out", str(out3), "--limit", "2"]) == 0
    before = out3.read_text()
    assert main(["predict", "--in", str(changed), *base[3:], "--out", str(out3), "--engine", "ray"]) == 2
    assert f"{out3}:2: the record of 'k1' was written for other content" in capsys.readouterr().err
    assert out3.read_text() == before
    recs = read_lines(out3)
    out3.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "chain_hash"}) + "\n" for r in recs))
    assert main(base + ["--out", str(out3), "--engine", "ray"]) == 2
    assert f"{out3}:1: the record of 'k0' has no content hash" in capsys.readouterr().err


def _descendants(pid: int) -> set[int]:
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def _actor_pids() -> list[int]:
    """Processes of this test's cluster that run a Ray Data map actor (ours: the cluster is a child)."""
    pids = []
    for pid in _descendants(os.getpid()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"ray::MapWorker"):
            pids.append(pid)
    return pids


def _driver(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "predictor", *argv], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for_part(parts: Path, proc: subprocess.Popen, timeout: float = 900) -> bool:
    # generous: on a loaded machine starting an actor alone has taken minutes
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and proc.poll() is None:
        if parts.is_dir() and any(parts.glob("part-*.jsonl")):
            return True
        time.sleep(0.05)
    return False


def test_killed_worker_and_killed_driver_then_rerun_complete(cluster, chains_file, model_dir, local_labels, tmp_path):
    out, parts = tmp_path / "k.jsonl", tmp_path / "k.jsonl.parts"
    argv = ["label", "--in", str(chains_file), "--out", str(out), "--model", model_dir, "--engine", "ray",
            "--workers", "2", "--address", cluster]
    # 1. kill one actor process mid-run (after the first finished chain): Ray restarts it and retries
    proc = _driver(argv)
    assert _wait_for_part(parts, proc), proc.communicate()[1][-3000:]
    victims = _actor_pids()
    assert victims, "no actor process found"
    os.kill(victims[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]  # the actor was restarted and its chain retried
    assert len(read_lines(out)) == len(CHAINS)
    # 2. kill the driver itself mid-run: the finished parts stay, the re-run completes the rest
    out2, parts2 = tmp_path / "d.jsonl", tmp_path / "d.jsonl.parts"
    proc2 = _driver(argv[:4] + [str(out2)] + argv[5:])
    assert _wait_for_part(parts2, proc2), proc2.communicate()[1][-3000:]
    proc2.kill()
    proc2.wait()
    n_parts = [len(read_lines(p)) for p in parts2.glob("part-*.jsonl")]  # whole files only
    assert 1 <= sum(n_parts) < len(CHAINS)
    assert main(argv[:4] + [str(out2)] + argv[5:]) == 0
    for o in (out, out2):
        recs = read_lines(o)
        assert [r["id"] for r in recs] == [c["id"] for c in CHAINS]  # complete, no duplicate
        assert untimed(recs) == untimed(local_labels)
        assert not Path(str(o) + ".parts").exists()


def test_plan_workers_refuses_a_pool_that_would_wait_forever():
    from argparse import Namespace

    args = Namespace(workers=2, cpus_per_worker=1.0, gpus_per_worker=None)
    assert plan_workers(args, {"CPU": 2.0}) == plan_workers(args, {"CPU": 2.0, "GPU": 0.0})
    assert plan_workers(args, {"CPU": 2.0}).gpus == 0.0
    with pytest.raises(ValueError, match="need 4 CPUs; the cluster has 2"):
        plan_workers(Namespace(workers=2, cpus_per_worker=2.0, gpus_per_worker=None), {"CPU": 2.0})
    with pytest.raises(ValueError, match="need 2 GPUs"):
        plan_workers(Namespace(workers=2, cpus_per_worker=1.0, gpus_per_worker=1.0), {"CPU": 8.0, "GPU": 1.0})
    auto = plan_workers(Namespace(workers=None, cpus_per_worker=1.0, gpus_per_worker=None), {"CPU": 16.0, "GPU": 4.0})
    assert (auto.workers, auto.gpus) == (4, 1.0)


def test_merge_refuses_conflicts_and_mixed_settings_and_orders_by_input():
    a = {"id": "b", "scorer": "s", "lm": "x", "refresh": 1, "ranks": [1, 2], "seconds": 1.0}
    b = {"id": "a", "scorer": "s", "lm": "x", "refresh": 1, "ranks": [2, 1]}
    fields, order = ("scorer", "lm", "refresh"), {"a": 0, "b": 1}
    merged = merge_records(iter([(a, "p1:1"), (b, "p1:2"), ({**a, "seconds": 9.0}, "p2:1")]), ("id",), fields,
                           order, "in.jsonl", ranked=False)
    assert [r["id"] for r in merged] == ["a", "b"]  # input order; the retried duplicate dropped
    with pytest.raises(ValueError, match="p2:1: record \\('b',\\) differs from the one in p1:1"):
        merge_records(iter([(a, "p1:1"), ({**a, "ranks": [2, 1]}, "p2:1")]), ("id",), fields, order, "in", False)
    with pytest.raises(ValueError, match="p2:1: field 'lm' is 'y' but p1:1 has 'x'"):
        merge_records(iter([(a, "p1:1"), ({**b, "lm": "y"}, "p2:1")]), ("id",), fields, order, "in", False)
    with pytest.raises(ValueError, match="id 'zz' is not in in.jsonl"):
        merge_records(iter([({**a, "id": "zz"}, "p:1")]), ("id",), fields, order, "in.jsonl", False)


def test_ray_refuses_to_resume_output_of_another_lm(cluster, chains_file, model_dir, local_labels, tmp_path,
                                                    tokenizer, capsys):
    from conftest import make_tiny_lm

    other = tmp_path / "other-lm"
    lm = make_tiny_lm(tokenizer, seed=1)
    lm.model.save_pretrained(other)
    lm.tokenizer.save_pretrained(other)
    out = tmp_path / "o.jsonl"
    out.write_text(json.dumps(local_labels[0]) + "\n")  # labeled with model_dir
    capsys.readouterr()
    assert main(["label", "--in", str(chains_file), "--out", str(out), "--model", str(other),
                 "--engine", "ray", "--workers", "1"]) == 2
    assert f"{out}:1: field 'lm' is '{local_labels[0]['lm']}' but this run uses" in capsys.readouterr().err
    assert out.read_text() == json.dumps(local_labels[0]) + "\n"  # untouched
    # an LM that cannot load stops the run with the worker's error, not a hang or a Ray traceback
    assert main(["label", "--in", str(chains_file), "--out", str(tmp_path / "n.jsonl"), "--model",
                 str(tmp_path / "nope"), "--engine", "ray", "--workers", "1"]) == 2
    assert "cannot load LM" in capsys.readouterr().err


def test_predict_ray_names_the_file_and_line_of_a_skipped_chain(cluster, model_dir, tmp_path, capsys):
    """A chain too long for the LM is skipped by both engines with the same "file:line: message"."""
    path = tmp_path / "chains.jsonl"
    rows = [CHAINS[1], {"id": "long", "question": "q?", "reasoning": "word " * 600, "answer": "1"}, CHAINS[2]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = ["predict", "--in", str(path), "--scorer", "surprisal", "--model", model_dir]
    errs = []
    for engine in (["--engine", "local"], ["--engine", "ray", "--workers", "1"]):
        assert main(base + ["--out", str(tmp_path / f"{engine[1]}.jsonl"), *engine]) == 0
        errs.append(capsys.readouterr().err)
        assert [r["id"] for r in read_lines(tmp_path / f"{engine[1]}.jsonl")] == [CHAINS[1]["id"], CHAINS[2]["id"]]
    for err in errs:
        assert "skipped 1 chain(s): too long for the LM" in err
        assert f"e.g. {path}:2: " in err


def test_predict_ray_says_the_cost_of_a_loo_predictor_once(cluster, model_dir, tmp_path, capsys):
    """The driver never loads the predictor; the note comes from its predictor.json, as local prints it."""
    from conftest import make_predictor
    from predictor.lm import load_lm

    pred = make_predictor(load_lm(model_dir, device="cpu"), tmp_path / "loo-pred", ("logits", "position", "loo"))
    chains_file = tmp_path / "two.jsonl"
    chains_file.write_text("".join(json.dumps(c) + "\n" for c in CHAINS[:2]))
    run = ["predict", "--in", str(chains_file), "--model", model_dir, "--predictor", str(pred), "--engine", "ray",
           "--workers", "1", "--out", str(tmp_path / "p.jsonl")]
    assert main(run) == 0
    err = capsys.readouterr().err
    assert err.count("scores every single deletion exactly") == 1 and "note: predictor 'loo-pred'" in err
    assert main(run) == 0  # all done: nothing runs, no note
    assert "scores every single deletion" not in capsys.readouterr().err
