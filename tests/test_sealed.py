"""The sealed test list (data/sealed_test.json) is stable, follows its rule, and no ranked file reads it."""
from __future__ import annotations

import json

import pytest

from predictor import sealed
from predictor.sealed import (QUEUES, SealedError, all_sealed_ids, check_unsealed, ids_digest, is_sealed,
                              queue_ids, ranked_files, read_ids, sealed_ranked_files, sealed_hash, sealed_ids, select,
                              without_sealed)


def test_list_is_stable():
    """The committed ids hash to the pinned digest (editing the list fails here and in the loader)."""
    obj = json.loads(sealed.SEALED_FILE.read_text())
    assert obj["seed"] == sealed.SEED
    assert set(obj["domains"]) == set(QUEUES)
    assert ids_digest({d: v["ids"] for d, v in obj["domains"].items()}) == sealed.SEALED_DIGEST
    sizes = {d: len(sealed_ids(d)) for d in QUEUES}
    assert sizes == {"gsm8k": 165, "aqua": 62, "strategyqa": 189}


def test_disjoint_from_every_committed_ranked_file():
    read = read_ids(ranked_files())
    assert ranked_files(), "no ranked files found"
    hit = sorted(all_sealed_ids() & read)
    assert not hit, f"sealed chains were labeled into data/ranked/: {hit[:5]} (label from a stripped queue)"


@pytest.mark.parametrize("domain", sorted(QUEUES))
def test_each_domain_follows_the_rule(domain):
    """Sealed = queue ids with u(id) < fraction that were unread at sealing: every such id not sealed
    has been labeled (ranked files only grow), every sealed one is in the queue and hashes below."""
    queue, fraction = QUEUES[domain]
    ids = queue_ids(domain)
    chosen = sealed_ids(domain)
    assert chosen <= set(ids)
    assert all(sealed_hash(i) < fraction for i in chosen)
    below = {i for i in ids if sealed_hash(i) < fraction}
    assert below - chosen <= read_ids(ranked_files())
    assert len(chosen) >= 0.5 * fraction * len(ids)  # a sizeable set, not an accident of the rule


def test_domains_are_disjoint():
    seen: set[str] = set()
    for d in QUEUES:
        assert not (sealed_ids(d) & seen)
        seen |= sealed_ids(d)
    assert seen == all_sealed_ids()


def test_hash_and_select():
    assert sealed_hash("gsm8k-train-1") == sealed_hash("gsm8k-train-1")
    assert sealed_hash("gsm8k-train-1") != sealed_hash("gsm8k-train-1", seed=0)
    us = [sealed_hash(f"x-{i}") for i in range(4000)]
    assert 0.0 <= min(us) and max(us) < 1.0 and abs(sum(u < 0.1 for u in us) / 4000 - 0.1) < 0.02
    ids = [f"x-{i}" for i in range(200)]
    got = select(ids, {"x-3"}, 0.3)
    assert got == [i for i in ids if sealed_hash(i) < 0.3 and i != "x-3"]
    with pytest.raises(ValueError, match="fraction"):
        select(ids, set(), 1.5)


def test_helpers():
    sid = sorted(sealed_ids("aqua"))[0]
    assert is_sealed(sid) and not is_sealed("not-an-id")
    chains = [{"id": sid}, {"id": "not-an-id"}]
    assert without_sealed(chains) == [{"id": "not-an-id"}]
    check_unsealed(["not-an-id"])
    with pytest.raises(SealedError, match="1 sealed chain"):
        check_unsealed([sid, "not-an-id"], "training data")
    with pytest.raises(KeyError, match="unknown sealed domain"):
        sealed_ids("mnist")


@pytest.mark.parametrize("cmd", ["strip", "only"])
def test_strip_keeps_the_open_chains_and_only_the_sealed_ones(tmp_path, cmd):
    sid = sorted(sealed_ids("strategyqa"))[0]
    src = tmp_path / "q.jsonl"
    src.write_text(json.dumps({"id": "a"}) + "\n" + json.dumps({"id": sid}) + "\n\n" + json.dumps({"id": "b"}) + "\n")
    out = tmp_path / "out.jsonl"
    assert sealed.main([cmd, "--in", str(src), "--out", str(out)]) == 0
    want = ["a", "b"] if cmd == "strip" else [sid]
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == want


def test_sealed_labels_live_apart_and_hold_only_sealed_chains(tmp_path):
    (tmp_path / "data" / "ranked" / "sealed").mkdir(parents=True)
    sid = sorted(sealed_ids("gsm8k"))[0]
    (tmp_path / "data" / "ranked" / "sealed" / "gsm8k.jsonl").write_text(json.dumps({"id": sid}) + "\n")
    (tmp_path / "data" / "ranked" / "open.jsonl").write_text(json.dumps({"id": "a"}) + "\n")
    assert [p.name for p in ranked_files(tmp_path)] == ["open.jsonl"]
    assert [p.name for p in sealed_ranked_files(tmp_path)] == ["gsm8k.jsonl"]
    # the committed sealed labels (once written) are sealed chains only
    assert read_ids(sealed_ranked_files()) <= all_sealed_ids()


def test_build_refuses_to_replace_the_list():
    with pytest.raises(SystemExit, match="chosen once"):
        sealed.main(["build"])


def test_loader_rejects_an_altered_list(tmp_path, monkeypatch):
    obj = json.loads(sealed.SEALED_FILE.read_text())
    obj["domains"]["aqua"]["ids"] = obj["domains"]["aqua"]["ids"][1:]
    fake = tmp_path / "sealed_test.json"
    fake.write_text(json.dumps(obj))
    monkeypatch.setattr(sealed, "SEALED_FILE", fake)
    with pytest.raises(SealedError, match="altered"):
        sealed_ids("aqua", path=fake)


def test_a_state_of_a_sealed_chain_counts_as_sealed(tmp_path):
    sid = sorted(sealed_ids("aqua"))[0]
    state = {"id": f"{sid}@shipped:0.5", "parent_id": sid}
    assert without_sealed([state, {"id": "a"}]) == [{"id": "a"}]
    with pytest.raises(SealedError, match="states.jsonl"):
        check_unsealed(sealed.record_ids([state]), "states.jsonl")
    src = tmp_path / "q.jsonl"
    src.write_text(json.dumps(state) + "\n" + json.dumps({"id": "a"}) + "\n")
    assert sealed.main(["strip", "--in", str(src), "--out", str(tmp_path / "o.jsonl")]) == 0
    assert (tmp_path / "o.jsonl").read_text() == json.dumps({"id": "a"}) + "\n"


@pytest.mark.parametrize("content, msg", [
    ('{"id": "a"}\n\n{"id": "b"\n', "q.jsonl:3: invalid JSON"),
    ('{"id": "a"}\n{"text": "no id"}\n', "q.jsonl:2: id: missing"),
    ('[1, 2]\n', "q.jsonl:1: id: missing"),
])
def test_strip_and_only_name_the_bad_line_and_write_nothing(tmp_path, capsys, content, msg):
    src = tmp_path / "q.jsonl"
    src.write_text(content)
    for cmd in ("strip", "only"):
        assert sealed.main([cmd, "--in", str(src), "--out", str(tmp_path / "o.jsonl")]) == 2
        assert msg in capsys.readouterr().err
        assert not (tmp_path / "o.jsonl").exists()


def test_strip_and_only_refuse_to_overwrite_their_input_and_missing_or_unsealed_input(tmp_path, capsys):
    src = tmp_path / "q.jsonl"
    src.write_text(json.dumps({"id": "a"}) + "\n")
    assert sealed.main(["strip", "--in", str(src), "--out", str(src)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert src.read_text() == json.dumps({"id": "a"}) + "\n"
    assert sealed.main(["strip", "--in", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "nope.jsonl: no such input file" in capsys.readouterr().err
    assert sealed.main(["only", "--in", str(src), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "none of its 1 records is sealed" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
