"""Training data (pruned states), splits, baselines and the whole pipeline on a tiny random LM."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from predictor.splits import split_ids
from predictor.training import column_spearman, single_signal_baselines
from predictor.training_data import state_targets
from tests.conftest import write_ranked

EXTRA_CHAINS = [
    {"id": "c3", "question": "Sam reads 5 pages a day. How many pages in 3 days?",
     "reasoning": "He reads 5 * 3 = 15 pages.", "answer": "15"},
    {"id": "c4", "question": "A box has 12 eggs and 4 break. How many are left?",
     "reasoning": "12 - 4 = 8 eggs are left.", "answer": "8"},
]


def test_state_targets_are_the_greedy_continuation():
    order = [3, 0, 5, 1, 4, 2]  # token 3 deleted first, ..., token 2 last
    kept, y = state_targets(order, 0.0)
    assert kept == list(range(6))
    np.testing.assert_allclose(y, np.array([1, 3, 5, 0, 4, 2]) / 5)  # ranks - 1 normalized
    kept, y = state_targets(order, 0.5)  # 3 deleted: 3, 0, 5 -> survivors 1, 2, 4 deleted in order 1, 4, 2
    assert kept == [1, 2, 4]
    np.testing.assert_allclose(y, [0.0, 1.0, 0.5])
    assert state_targets([1, 0], 0.75) is None  # fewer than two survivors
    with pytest.raises(ValueError):
        state_targets(order, 1.0)


def test_split_by_chain_is_seeded_disjoint_and_order_free():
    ids = [f"c{i}" for i in range(40)]
    s = split_ids(ids, seed=1)
    assert sorted(s["train"] + s["val"] + s["test"]) == sorted(ids)
    assert 20 <= len(s["train"]) <= 36 and s["val"] and s["test"]
    grown = split_ids(ids + [f"new{i}" for i in range(100)], seed=1)
    for part in ("train", "val", "test"):  # adding chains never moves an existing chain
        assert [c for c in grown[part] if c in ids] == s[part]
    many = split_ids([f"x{i}" for i in range(4000)], seed=0)
    assert abs(len(many["test"]) / 4000 - 0.15) < 0.03 and abs(len(many["val"]) / 4000 - 0.15) < 0.03
    assert split_ids(ids[::-1], seed=1)["test"] == [c for c in ids[::-1] if c in s["test"]]
    assert split_ids(ids, seed=2)["test"] != s["test"]
    small = split_ids(["a", "b", "c"])
    assert all(len(v) == 1 for v in small.values())
    with pytest.raises(ValueError, match="unique"):
        split_ids(["a", "a", "b"])


def test_column_spearman_and_baseline_signs():
    rng = np.random.default_rng(0)
    X, y = [], []
    for _ in range(5):
        x = rng.normal(size=(12, 3))
        X.append(x)
        y.append(np.argsort(np.argsort(-x[:, 1])) / 11)  # column 1 is perfectly anti-correlated
    rho = column_spearman(X, y)
    want = np.mean([[spearmanr(x[:, j], t)[0] for j in range(3)] for x, t in zip(X, y)], axis=0)
    np.testing.assert_allclose(rho, want, atol=1e-12)
    base = single_signal_baselines(["logit.surprisal", "b", "c"], X, y)
    assert base["best single: b"] == (1, -1.0)
    assert "surprisal" in base


@pytest.fixture(scope="module")
def ranked_file(tiny_lm, tmp_path_factory):
    from tests.conftest import CHAINS

    return write_ranked(tmp_path_factory.mktemp("ranked") / "ranked.jsonl", CHAINS + EXTRA_CHAINS, tiny_lm)


def test_train_pipeline_end_to_end(tiny_lm, ranked_file, tmp_path, monkeypatch, capsys):
    import predictor.lm
    import predictor.predictor_dir
    from predictor.cli import main
    from predictor.predictor_dir import load_predictor

    monkeypatch.setattr(predictor.lm, "load_lm", lambda *a, **k: tiny_lm)
    monkeypatch.setattr(predictor.predictor_dir, "pretrained_dir", lambda name="x": tmp_path / "shipped")
    out = tmp_path / "run"
    rc = main(["train", "--data", str(ranked_file), "--out", str(out), "--regressors", "lgbm-regression,mlp",
               "--states", "0,0.5", "--split", "0.5,0.25,0.25", "--max-epochs", "2", "--refresh", "2",
               "--groups", "logits,position,lexical", "--cache", str(tmp_path / "cache"), "--no-progress"])
    assert rc == 0
    table = capsys.readouterr().out
    assert "baseline: surprisal" in table and "lgbm-regression" in table and "+ refresh" in table
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selected"] in ("lgbm-regression", "mlp", "ensemble")
    assert "ensemble (lgbm-regression + mlp)" in table  # the rank average is a candidate too
    split = metrics["split"]
    assert sorted(sum(split.values(), [])) == ["c1", "c2", "c3", "c4"] and len(split["test"]) == 1
    for row in metrics["rows"]:
        assert -1 <= row["test"]["lo"] <= row["test"]["mean"] <= row["test"]["hi"] <= 1
    reg, meta = load_predictor(out / "predictor")
    assert meta["lm_fingerprint"] == tiny_lm.fingerprint and meta["split"] == split
    assert meta["regressor"] == metrics["selected"] and meta["n_train_chains"] == 2
    assert (tmp_path / "shipped").exists() is False  # only with --ship
    for kind in ("lgbm-regression", "mlp", "ensemble"):
        assert load_predictor(out / "models" / kind)[1]["regressor"] == kind
    # the saved predictor works through the public RankPredictor path
    from predictor.rank_predictor import RankPredictor
    from predictor.scorers.learned import LearnedScorer

    ranks = RankPredictor(tiny_lm, LearnedScorer(reg, meta)).predict_ranks(EXTRA_CHAINS[0])
    assert sorted(ranks.tolist()) == list(range(1, len(ranks) + 1))


def test_train_rejects_bad_arguments(tmp_path, capsys):
    from predictor.cli import main

    assert main(["train", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 2
    assert "no such ranked file" in capsys.readouterr().err
    assert main(["train", "--regressors", "xgboost", "--out", str(tmp_path)]) == 2
    assert "unknown regressors" in capsys.readouterr().err


def test_extra_train_chains_only_ever_train(tiny_lm, ranked_file, tmp_path, monkeypatch, capsys):
    import predictor.lm
    from predictor.cli import main
    from predictor.predictor_dir import load_predictor
    from tests.conftest import CHAINS

    monkeypatch.setattr(predictor.lm, "load_lm", lambda *a, **k: tiny_lm)
    more = [{"id": f"x{i}", "question": f"What is {i} + {i}?", "reasoning": f"{i} + {i} = {2 * i}.",
             "answer": str(2 * i)} for i in range(1, 4)]
    extra = write_ranked(tmp_path / "extra.jsonl", more + [CHAINS[0]], tiny_lm, seed=1)  # c1 is in --data too
    common = ["--data", str(ranked_file), "--regressors", "lgbm-regression", "--states", "0",
              "--split", "0.5,0.25,0.25", "--groups", "logits,position", "--cache", str(tmp_path / "cache"),
              "--no-progress"]
    assert main(["train", *common, "--out", str(tmp_path / "plain")]) == 0
    assert main(["train", *common, "--extra-train", str(extra), "--out", str(tmp_path / "more")]) == 0
    assert "+3 extra training chains" in capsys.readouterr().err
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    more_m = json.loads((tmp_path / "more" / "metrics.json").read_text())
    assert more_m["split"] == plain["split"]  # val/test untouched; c1 keeps its --data labels and split
    _, meta = load_predictor(tmp_path / "more" / "predictor")
    assert meta["extra_train_ids"] == ["x1", "x2", "x3"]
    assert meta["n_train_chains"] == len(plain["split"]["train"]) + 3
    missing = tmp_path / "missing.jsonl"
    assert main(["train", *common, "--extra-train", str(missing), "--out", str(tmp_path / "bad")]) == 2
    assert "--extra-train" in capsys.readouterr().err


def test_approximate_labels_may_train_but_never_be_held_out(ranked_file, tmp_path):
    """Records of `label --budget/--shortlist/--stride` are told apart from exact ones; in --domain-data
    they train, and a split that would hold one out for validation or test is refused, naming its file."""
    from predictor.ranked import approximate_label, read_ranked
    from predictor.training import TrainConfig, check_approximate_held_out, read_training_records

    exact = read_ranked(ranked_file)[0]
    assert approximate_label(exact) is None
    assert approximate_label({**exact, "budget": 1.0}) is None
    assert approximate_label({**exact, "budget": 0.1, "proposer": None}) == "budget 0.1 (lazy)"
    assert approximate_label({**exact, "budget": 0.03, "proposer": "smollm2-joint"}) == "budget 0.03"
    assert approximate_label({**exact, "shortlist": 4, "budget": None}) == "shortlist 4"
    assert approximate_label({**exact, "stride": 4}) == "stride 4"

    approx = tmp_path / "approx.jsonl"
    approx.write_text("".join(json.dumps({**r, "id": f"long-{i}", "budget": 0.1, "proposer": None}) + "\n"
                              for i, r in enumerate(read_ranked(ranked_file))))
    read = read_training_records(TrainConfig(data=str(ranked_file), domain_data=(str(approx),)))
    assert sorted(read.approximate) == [f"long-{i}" for i in range(len(read.domain))]
    assert all(v == f"{approx}: budget 0.1 (lazy)" for v in read.approximate.values())
    ids = [str(r["id"]) for r in read.main]
    check_approximate_held_out(read.approximate, {"train": ids[:2] + ["long-0"], "val": ids[2:3], "test": ids[3:]})
    with pytest.raises(ValueError, match=rf"{approx.name}: budget 0.1 \(lazy\) labels of chain 'long-1'.*test"):
        check_approximate_held_out(read.approximate, {"train": ids, "val": [], "test": ["long-1"]})


def test_policy_states_are_exact_greedy_from_the_predictors_state_and_only_train(tiny_lm, ranked_file):
    """label_state runs greedy on the parent's tokens at `kept`; build_training_data adds it as a
    "policy" example of its parent, never selected as a full-chain (validation/test) example."""
    from predictor.features import FeatureSpec
    from predictor.greedy import greedy_layout
    from predictor.layout import Layout
    from predictor.policy_states import label_state, validate_state
    from predictor.ranked import read_ranked
    from predictor.training_data import build_training_data

    recs = read_ranked(ranked_file)
    parent = recs[1]
    kept = [0, 2, 3, 5, 7]
    st = label_state(tiny_lm, parent, kept, 0.5, "test-policy")
    assert st["id"] == f"{parent['id']}@test-policy:0.5" and st["kept"] == kept and st["parent_id"] == parent["id"]
    assert st["reasoning_ids"] == [parent["reasoning_ids"][i] for i in kept]
    # the same search as on a layout whose reasoning is just those tokens
    lay = Layout(parent["prompt_ids"], st["reasoning_ids"], parent["answer_ids"])
    assert greedy_layout(tiny_lm, lay).order == st["order"]
    validate_state(st, parent, "here")
    with pytest.raises(Exception, match="kept"):
        validate_state({**st, "kept": [3, 2]}, parent, "here")
    spec = FeatureSpec(groups=("logits", "position"))
    data = build_training_data(recs, tiny_lm, spec, (0.0,), policy_states=[st], progress=False)
    pol = [e for e in data.examples if e.source == "policy"]
    assert len(pol) == 1 and pol[0].chain_id == parent["id"] and pol[0].X.shape[0] == len(kept)
    assert len(data.select([parent["id"]], (0.0,))[0]) == 1  # full chain only
    assert len(data.select([parent["id"]], None)[0]) == 2  # + the policy state
    with pytest.raises(ValueError, match="parent chain"):
        build_training_data(recs[:1], tiny_lm, spec, (0.0,), policy_states=[st], progress=False)


def test_summary_table_never_cuts_names():
    from predictor.training import format_table

    long = "ensemble (lgbm-regression + lgbm-lambdarank + mlp + sequence)"
    cell = {"mean": 0.5, "lo": 0.4, "hi": 0.6}
    table = format_table([{"name": long, "val": cell, "test": cell, "fit_seconds": 1.0},
                          {"name": "mlp", "val": cell, "fit_seconds": 2.0}])
    lines = table.splitlines()
    assert lines[2].startswith(long + " ") and lines[3].startswith("mlp ")
    assert lines[2].index("+0.500") == lines[3].index("+0.500")  # columns stay aligned


def test_chain_domain_and_per_domain_scores():
    from predictor.domains import chain_domain, group_by_domain, per_domain

    assert chain_domain("gsm8k-train-12") == "gsm8k" and chain_domain("aqua-test-238") == "aqua"
    assert chain_domain("c1") == "other" and chain_domain("-x") == "other"
    assert chain_domain({"id": "aqua-dev-1", "domain": "algebra"}) == "algebra"
    assert chain_domain({"id": "aqua-dev-1"}) == "aqua"
    ids = ["a-1", "b-1", "a-2", "b-2", "a-3"]
    assert group_by_domain(ids) == {"a": [0, 2, 4], "b": [1, 3]}
    got = per_domain([0.1, 0.5, 0.3, 0.7, 0.2], ids, lambda v: {"mean": float(v.mean()), "n": len(v)})
    assert got == {"a": {"mean": pytest.approx(0.2), "n": 3}, "b": {"mean": pytest.approx(0.6), "n": 2}}
    with pytest.raises(ValueError, match="5 chain ids"):
        per_domain([0.1], ids, lambda v: {})


def test_domain_data_is_split_like_data_and_scored_per_domain(tiny_lm, ranked_file, tmp_path, monkeypatch, capsys):
    """--domain-data chains go to train/val/test by the same id hash; the GSM8K-style file's split is
    unchanged, each domain's test chains get their own row cells, and a sealed id is refused."""
    import predictor.lm
    from predictor.cli import main
    from predictor.predictor_dir import load_predictor
    from predictor.sealed import all_sealed_ids
    from predictor.splits import split_ids

    monkeypatch.setattr(predictor.lm, "load_lm", lambda *a, **k: tiny_lm)
    more = [{"id": f"dom-{i}", "question": f"What is {i} times 3?", "reasoning": f"{i} * 3 = {3 * i}, so {3 * i}.",
             "answer": str(3 * i)} for i in range(1, 9)]
    dom = write_ranked(tmp_path / "dom.jsonl", more, tiny_lm, seed=2)
    common = ["--data", str(ranked_file), "--regressors", "lgbm-regression", "--states", "0",
              "--split", "0.5,0.25,0.25", "--groups", "logits,position", "--cache", str(tmp_path / "cache"),
              "--no-progress"]
    assert main(["train", *common, "--domain-data", str(dom), "--out", str(tmp_path / "dom")]) == 0
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "dom" / "metrics.json").read_text())
    ids = ["c1", "c2", "c3", "c4"] + [c["id"] for c in more]
    assert m["split"] == split_ids(ids, (0.5, 0.25, 0.25), seed=0)
    held = {p: m["split"][p] for p in ("val", "test")}
    for row in m["rows"]:
        for part in ("val", "test"):
            doms = {d: v[part]["n_chains"] for d, v in row["domains"].items() if part in v}
            want = {}
            for c in held[part]:
                d = "dom" if c.startswith("dom-") else "other"
                want[d] = want.get(d, 0) + 1
            assert doms == want
            total = sum(np.asarray(v[part]["per_chain"]).sum() for v in row["domains"].values() if part in v)
            assert total == pytest.approx(np.sum(row[part]["per_chain"]))
    assert "test chains by domain" in out
    for row in m["rows"]:  # every saved model carries its own per-domain scores
        if row["kind"] not in ("baseline", "refresh"):
            _, kmeta = load_predictor(tmp_path / "dom" / "models" / row["kind"])
            assert kmeta["metrics"]["domains"] == row["domains"]
    _, meta = load_predictor(tmp_path / "dom" / "predictor")
    assert [d["path"] for d in meta["domain_data"]] == [str(dom)]
    # a chain in two files, and a sealed chain, are refused with the file named
    dup = write_ranked(tmp_path / "dup.jsonl", [more[0]], tiny_lm)
    assert main(["train", *common, "--domain-data", f"{dom},{dup}", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "dup.jsonl" in err and "is also in " in err and "dom.jsonl (--domain-data)" in err
    sealed_id = sorted(all_sealed_ids())[0]
    bad = write_ranked(tmp_path / "sealed.jsonl", [{**more[0], "id": sealed_id}], tiny_lm)
    assert main(["train", *common, "--domain-data", str(bad), "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "sealed.jsonl (--domain-data) holds 1 sealed chain" in err


def test_a_predictor_trained_on_flow_groups_predicts_and_refreshes(tiny_lm, ranked_file, tmp_path, monkeypatch):
    """value_norm / multihop need the flow pass at prediction time too (LearnedScorer takes the spec's
    observe options): train with them, refresh through RankPredictor, predict a new chain."""
    import predictor.lm
    from predictor.cli import main
    from predictor.predictor_dir import load_predictor
    from predictor.rank_predictor import RankPredictor
    from predictor.scorers.learned import LearnedScorer

    monkeypatch.setattr(predictor.lm, "load_lm", lambda *a, **k: tiny_lm)
    out = tmp_path / "flow"
    assert main(["train", "--data", str(ranked_file), "--out", str(out), "--regressors", "lgbm-regression",
                 "--states", "0", "--split", "0.5,0.25,0.25", "--groups", "position,value_norm,multihop",
                 "--refresh", "2", "--cache", str(tmp_path / "cache"), "--no-progress"]) == 0
    reg, meta = load_predictor(out / "predictor")
    names = meta["feature_names"]
    assert "vn.answer.all_mean" in names and "hop.rollout" in names
    ranks = RankPredictor(tiny_lm, LearnedScorer(reg, meta)).predict_ranks(EXTRA_CHAINS[1])
    assert sorted(ranks.tolist()) == list(range(1, len(ranks) + 1))


def test_extra_train_is_repeatable_and_a_chain_trains_from_one_file(tiny_lm, ranked_file, tmp_path):
    from predictor.cli import build_parser
    from predictor.commands.train import config_from_args
    from predictor.training import TrainConfig, read_training_records

    def chains(prefix, k):
        return [{"id": f"{prefix}{i}", "question": f"What is {i} + {i}?", "reasoning": f"{i} + {i} = {2 * i}.",
                 "answer": str(2 * i)} for i in range(1, k + 1)]

    a = write_ranked(tmp_path / "a.jsonl", chains("a", 2), tiny_lm, seed=1)
    b = write_ranked(tmp_path / "b.jsonl", chains("b", 3), tiny_lm, seed=2)
    read = read_training_records(TrainConfig(data=str(ranked_file), extra_train=(str(a), str(b))))
    assert [r["id"] for r in read.extra] == ["a1", "a2", "b1", "b2", "b3"]
    assert [r["id"] for r in read_training_records(TrainConfig(data=str(ranked_file), extra_train=str(b))).extra] \
        == ["b1", "b2", "b3"]  # one path as a str, as older configs and FinetuneConfig give it
    clash = write_ranked(tmp_path / "clash.jsonl", chains("b", 1), tiny_lm, seed=3)
    with pytest.raises(ValueError, match=r"clash.jsonl: chain 'b1' is also in .*b.jsonl"):
        read_training_records(TrainConfig(data=str(ranked_file), extra_train=(str(b), str(clash))))
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"extra-train": [str(a)]}))
    args = build_parser().parse_args(["train", "--config", str(cfg), "--extra-train", str(b)])
    assert config_from_args(args).extra_train == (str(a), str(b))  # the config's and the command line's add up
    assert config_from_args(build_parser().parse_args(["train"])).extra_train == ()
