"""Evaluation report: plain-data pieces, and the whole report on a tiny ranked fixture (seconds)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from predictor.evaluation.fidelity import (both_objectives, chain_fidelity, contiguous_keep_indices, gap_recovered,
                                           greedy_keep_indices, keep_indices, summarize_fidelity)
from predictor.evaluation.categories import category_ranks
from predictor.evaluation.report import render_markdown, write_report

CHAINS = [  # short reasoning: greedy labeling is O(n^2) candidate passes
    {"id": "c1", "question": "Tom has 3 apples and buys 4 more. How many?",
     "reasoning": "Tom has 3 + 4 = 7 apples.", "answer": "7"},
    {"id": "c2", "question": "A pen costs $2. How much do 5 pens cost?",
     "reasoning": "So 5 pens cost 5 * 2 = 10.", "answer": "10"},
    {"id": "c3", "question": "Sam reads 12 pages a day for 3 days. How many pages?",
     "reasoning": "He reads 12 * 3 = 36 pages.", "answer": "36"},
    {"id": "c4", "question": "A box holds 6 eggs. How many eggs are in 4 boxes?",
     "reasoning": "4 boxes hold 4 * 6 = 24 eggs.", "answer": "24"},
    {"id": "c5", "question": "Mia had 20 dollars and spent 8. How much is left?",
     "reasoning": "Mia has 20 - 8 = 12 left.", "answer": "12"},
]


def test_keep_sets_follow_prune_and_greedy():
    ranks = np.array([3, 1, 2, 5, 4])
    assert keep_indices(ranks, 0.5) == [0, 3, 4]  # round(2.5) = 3 highest ranks
    order = [1, 2, 0, 4, 3]  # greedy deletion order: survivors are the last k
    assert greedy_keep_indices(order, 0.5) == [0, 3, 4]
    assert greedy_keep_indices(order, 0.3) == [3, 4]
    ranks = np.array([2, 5, 1, 4, 3])
    assert contiguous_keep_indices(ranks, 0.5, 0.0) == keep_indices(ranks, 0.5) == [1, 3, 4]  # no gap cost: plain
    assert contiguous_keep_indices(ranks, 0.5, 1000.0) == [0, 1, 4]  # one removed run, the cheapest: ranks 1 + 4
    assert contiguous_keep_indices(ranks, 0.5, 0.0, 1.0) == [2, 3, 4]  # the suffix


def test_chain_fidelity_scores_contiguous_methods(tiny_lm):
    rec = {"prompt_ids": [1, 2, 3], "reasoning_ids": [4, 5, 6, 7, 8], "answer_ids": [9, 10], "order": [1, 2, 0, 4, 3]}
    ranks = np.array([3, 1, 2, 5, 4])
    out = chain_fidelity(tiny_lm.model, rec, {"p": ranks}, (0.5,), {"p+gaps": ("p", 1000.0, 0.0)})
    assert set(out) == {"p", "p+gaps", "greedy"}
    want = both_objectives(tiny_lm.model, [1, 2, 3], [4, 7, 8], [9, 10])  # one removed run: indices 1, 2
    assert out["p+gaps"]["joint"][0] == pytest.approx(want[0]) and out["p+gaps"]["answer"][0] == pytest.approx(want[1])


def test_gap_recovered_and_zero_gap():
    g = gap_recovered(np.array([-5.0, -3.0, -2.0]), np.array([-10.0, -3.0, -4.0]), np.array([0.0, -3.0, -2.0]))
    assert g[0] == pytest.approx(0.5) and np.isnan(g[1]) and g[2] == pytest.approx(1.0)
    per_chain = [{"random": {"joint": [-10.0], "answer": [-2.0]}, "greedy": {"joint": [0.0], "answer": [-1.0]},
                  "s": {"joint": [-5.0], "answer": [-1.5]}}]
    out = summarize_fidelity(per_chain, ratios=(0.5,), n_boot=50)
    assert out["methods"]["s"]["joint"]["gap_recovered"] == [pytest.approx(0.5)]
    assert out["methods"]["greedy"]["answer"]["gap_recovered_mean"] == pytest.approx(1.0)


def test_category_ranks_on_plain_arrays():
    cats = [["symbolic_math", "grammatical", "symbolic_math"], ["grammatical", "symbolic_math"]]
    ranks = [np.array([3, 1, 2]), np.array([1, 2])]
    out = category_ranks(cats, ranks, n_boot=100)
    assert out["symbolic_math"]["mean"] == pytest.approx((1.0 + 0.5 + 1.0) / 3)
    assert out["grammatical"]["mean"] == pytest.approx(0.0)
    assert out["symbolic_math"]["lo"] <= out["symbolic_math"]["mean"] <= out["symbolic_math"]["hi"]
    assert "entity_name" not in out


def test_report_renders_from_plain_results(tmp_path):
    agr = {"a": {"spearman_mean": 0.5, "spearman_lo": 0.4, "spearman_hi": 0.6, "pooled_spearman": 0.45,
                 "kendall_mean": 0.3, "precision_first_25": 0.4, "precision_first_50": 0.6, "n_chains": 2,
                 "per_chain_spearman": [0.4, 0.6]}}
    res = {"meta": {"n_chains": 2, "data": "x.jsonl"}, "agreement": agr,
           "agreement_by_length": [{"bin": "1-32", "n_chains": 2, "scorers": {"a": {
               "spearman_mean": 0.5, "spearman_lo": float("nan"), "spearman_hi": 0.6}}}],
           "joint_vs_answer": {"n_chains": 0, "note": "none yet"}}
    paths = write_report(tmp_path, res)
    md = paths["md"].read_text()
    assert "| `a` | 0.500 [0.400, 0.600]" in md and "none yet" in md and "plots/agreement.png" in md
    assert json.loads(paths["json"].read_text())["agreement_by_length"][0]["scorers"]["a"]["spearman_lo"] is None
    assert paths["agreement"].stat().st_size > 1000
    assert "Not run" in render_markdown({"meta": {}})


def _ranked_records(lm, chains, objective="joint"):
    from predictor.chains import as_chain
    from predictor.greedy import greedy_prune
    from predictor.ranked import ranked_record

    out = []
    for c in chains:
        c = as_chain(c)
        res = greedy_prune(lm, c, objective)
        out.append(ranked_record(c, res, lm.fingerprint, objective, 1, lm.tokenizer))
    return out


def test_both_objectives_match_sequence_objective(tiny_lm):
    from predictor.objective import sequence_objective

    p, r, a = [1, 2, 3], [10, 11, 12, 13], [20, 21]
    j, ans = both_objectives(tiny_lm.model, p, r, a)
    assert j == pytest.approx(sequence_objective(tiny_lm.model, p + r + a, 3, 2, "joint"), abs=1e-9)
    assert ans == pytest.approx(sequence_objective(tiny_lm.model, p + r + a, 3, 2, "answer"), abs=1e-9)


@pytest.fixture(scope="module")
def fixture(tiny_lm):
    """Greedy-labeled tiny chains (3 train, 2 test) and a small LightGBM predictor trained on the 3."""
    from predictor.evaluation.ablation import default_regressor
    from predictor.features import FeatureSpec, extract_features
    from predictor.ranks import normalized_ranks

    joint = _ranked_records(tiny_lm, CHAINS)
    answer = _ranked_records(tiny_lm, CHAINS[:1], "answer")
    train, test = joint[:3], joint[3:]
    spec = FeatureSpec()
    tables = extract_features(tiny_lm, CHAINS[:3], spec)
    reg = default_regressor(n_estimators=20).fit([t.values for t in tables],
                                                 [normalized_ranks(r["ranks"]) for r in train])
    meta = {"feature_spec": spec.to_dict(), "feature_names": tables[0].names, "lm_fingerprint": tiny_lm.fingerprint,
            "lm_name": tiny_lm.name, "objective": "joint", "regressor": reg.kind,
            "split": {"train": [r["id"] for r in train], "test": [r["id"] for r in test]}}
    return {"joint": joint, "answer": answer, "train": train, "test": test, "regressor": reg, "metadata": meta}


def test_full_report_on_tiny_fixture(tiny_lm, fixture, tmp_path):
    from predictor.evaluation import evaluate
    from predictor.evaluation.ablation import default_regressor
    from predictor.rank_predictor import RankPredictor
    from predictor.scorers import LearnedScorer

    joint, answer, test = fixture["joint"], fixture["answer"], fixture["test"]
    rp = RankPredictor(tiny_lm, LearnedScorer(fixture["regressor"], fixture["metadata"]))
    res = evaluate(tiny_lm, joint + answer, rp, answer_records=answer, refreshes=(2,), strides=(2,),
                   frontier_chains=1, n_boot=200, progress=False,
                   make_regressor=lambda: default_regressor(n_estimators=10, min_child_samples=5),
                   meta={"data": "tiny", "regenerate": "make report"})
    assert res["meta"]["test_ids"] == ["c4", "c5"]  # never scores training chains
    agr = res["agreement"]
    assert set(agr) == {"learned", "random", "position", "surprisal", "local-gain", "attention", "snapkv", "think-clearly",
                        "leave-one-out"}
    for a in agr.values():
        assert -1 <= a["spearman_lo"] <= a["spearman_mean"] <= a["spearman_hi"] <= 1
    fid = res["fidelity"]["methods"]
    assert fid["greedy"]["joint"]["gap_recovered_mean"] == pytest.approx(1.0)
    # greedy's JOINT objective after deleting n - k tokens is the recorded trajectory value
    from predictor.evaluation.fidelity import keep_count
    for j, r in enumerate(res["fidelity"]["ratios"]):
        want = np.mean([t["trajectory"][len(t["ranks"]) - keep_count(len(t["ranks"]), r) - 1] for t in test])
        assert fid["greedy"]["joint"]["mean"][j] == pytest.approx(want, abs=1e-4)
    assert set(res["ablation"]) == {"attention only", "logits only", "position + lexical", "all but attention",
                                    "all", "hidden states only", "hidden + attention", "all + hidden"}
    # the hidden family: the 2-layer tiny LM's residual stream after layers 1 and 2 (depths 0.25..1.0), 32 wide
    assert res["ablation"]["hidden states only"]["n_features"] == 2 * 32
    assert "Attention features alone" in res["ablation_findings"]
    assert all(a["n_train_chains"] == 3 for a in res["ablation"].values())  # the stored train ids only
    frontier = {p["method"]: p for p in res["cost"]["frontier"]}
    assert frontier["greedy (exact)"]["spearman_mean"] == 1.0
    assert frontier["greedy (exact)"]["passes_per_chain"] > frontier["greedy stride=2"]["passes_per_chain"]
    assert "learned refresh=2" in frontier
    assert res["joint_vs_answer"]["n_chains"] == 1 and "predictor_vs_answer" not in res["joint_vs_answer"]
    assert set(res["functions"]) == {"greedy", "learned"}
    paths = write_report(tmp_path / "rep", res)
    md = paths["md"].read_text()
    for section in ("Rank agreement", "Feature-group ablation", "Downstream fidelity", "Function analysis",
                    "Cost-quality frontier", "JOINT vs ANSWER", "make report"):
        assert section in md
    for key in ("agreement", "ablation", "fidelity", "functions", "frontier"):
        assert paths[key].exists() and f"plots/{paths[key].name}" in md
    json.loads(paths["json"].read_text())


def test_evaluate_command(tiny_lm, fixture, tmp_path, monkeypatch):
    """`predictor evaluate` end to end on a saved predictor dir (cheap sections only)."""
    from predictor import lm as lm_mod
    from predictor.cli import main
    from predictor.jsonl_io import atomic_write_jsonl
    from predictor.predictor_dir import save_predictor

    data = tmp_path / "ranked.jsonl"
    atomic_write_jsonl(data, fixture["joint"] + fixture["answer"])
    pdir = save_predictor(tmp_path / "pred", fixture["regressor"],
                          {**fixture["metadata"], "feature_spec": fixture["metadata"]["feature_spec"],
                           "train_data_sha256": "0", "n_train_chains": 3, "metrics": {}})
    monkeypatch.setattr(lm_mod, "load_lm", lambda *a, **k: tiny_lm)
    out = tmp_path / "report"
    rc = main(["evaluate", "--data", str(data), "--predictor", str(pdir), "--scorers", "random,position",
               "--out", str(out), "--no-ablation", "--no-frontier", "--bootstrap", "100"])
    assert rc == 0
    res = json.loads((out / "report.json").read_text())
    assert set(res["agreement"]) == {"learned", "random", "position"}
    assert res["meta"]["test_ids"] == [r["id"] for r in fixture["test"]]
    assert (out / "plots" / "fidelity.png").exists() and "![" in (out / "report.md").read_text()
    assert main(["evaluate", "--data", str(data), "--predictor", str(pdir), "--scorers", "nope",
                 "--out", str(out)]) == 2


def test_unseen_split_leaves_out_every_chain_the_predictor_trained_or_selected_on():
    from predictor.evaluation import split_records

    recs = [{"id": i} for i in ("a", "b", "c", "d", "e", "x")]
    meta = {"split": {"train": ["a"], "val": ["b"], "test": ["c"]}, "extra_train_ids": ["d"]}
    test, train, desc = split_records(recs, meta)
    assert [r["id"] for r in test] == ["c"]
    test, train, desc = split_records(recs, meta, unseen=True)
    assert [r["id"] for r in test] == ["c", "e", "x"] and train == []
    assert "3 of 6" in desc and "3 share an id" in desc


def test_plots_save_writes_matplotlibs_png_atomically(tmp_path):
    """plots._save goes through jsonl_io.atomic_write_bytes: the same bytes as savefig to the path, no temp left."""
    from predictor.evaluation import plots

    plt = plots._plt()

    def fig():
        f, ax = plt.subplots()
        ax.plot([1, 2, 3], [3, 1, 2])
        return f

    f = fig()
    f.savefig(tmp_path / "direct.png", dpi=120, bbox_inches="tight")
    plt.close(f)
    plots._save(fig(), tmp_path / "sub" / "saved.png")
    assert (tmp_path / "sub" / "saved.png").read_bytes() == (tmp_path / "direct.png").read_bytes()
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["saved.png"]
