"""RankPredictor: loading (names, dirs, bad dirs, LM mismatch), predict_ranks and refresh."""
from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from predictor.observe import observe
from predictor.rank_predictor import PredictorMismatchError, RankPredictor
from predictor.scorers import get_scorer
from predictor.predictor_dir import pretrained_dir
from test_scorers import FakeRegressor, fake_learned


@pytest.fixture
def surprisal(tiny_lm):
    return RankPredictor.load("surprisal", lm=tiny_lm)


def test_load_by_scorer_name_and_predict(surprisal, tiny_lm, chains):
    assert surprisal.scorer.name == "surprisal" and surprisal.lm is tiny_lm
    one = surprisal.predict_ranks(chains[0])
    assert isinstance(one, np.ndarray) and sorted(one.tolist()) == list(range(1, len(one) + 1))
    many = surprisal.predict_ranks(chains)
    assert isinstance(many, list) and len(many) == 2
    np.testing.assert_array_equal(many[0], one)
    np.testing.assert_array_equal(one, get_scorer("surprisal").ranks(observe(tiny_lm, chains[0], attention=False)))


def test_refresh_runs_k_passes_and_deletes_lowest_first(surprisal, chains, monkeypatch):
    chain = chains[1]
    n = surprisal.num_tokens(chain)
    calls = []
    real = surprisal.observe_many

    def spy(cs, kept=None):
        assert len(cs) == 1
        calls.append(None if kept is None else kept[0])
        return real(cs, kept)

    monkeypatch.setattr(surprisal, "observe_many", spy)
    first = surprisal.predict_ranks(chain)
    for k in (2, 5, n + 3):
        calls.clear()
        r = surprisal.predict_ranks(chain, refresh=k)
        assert len(calls) == min(k, n)
        assert sorted(r.tolist()) == list(range(1, n + 1))
        # the first pass's ceil(n / k) lowest-scored tokens take ranks 1..ceil(n / k), in the same order
        m = -(-n // min(k, n))
        np.testing.assert_array_equal(np.sort(np.flatnonzero(r <= m)), np.sort(np.flatnonzero(first <= m)))
        # each later pass observes exactly the survivors
        assert calls[1] == sorted(np.flatnonzero(r > m).tolist())
    with pytest.raises(ValueError, match="refresh must be an integer >= 1"):
        surprisal.predict_ranks(chain, refresh=0)


def test_refresh_with_the_oracle_is_still_greedy(tiny_lm, chains):
    from predictor.greedy import greedy_prune

    rp = RankPredictor.load("greedy", lm=tiny_lm)
    assert rp.predict_ranks(chains[0], refresh=3).tolist() == greedy_prune(tiny_lm, chains[0]).ranks


def test_bad_chains_raise_clear_errors(surprisal, tiny_lm):
    with pytest.raises(ValueError, match="reasoning is empty"):
        surprisal.predict_ranks({"id": "e", "question": "q", "reasoning": "  ", "answer": "1"})
    long = {"id": "long", "question": "q", "reasoning": "word " * 600, "answer": "1"}
    with pytest.raises(ValueError, match="exceed the LM's context of 512"):
        surprisal.predict_ranks(long)
    with pytest.raises(ValueError, match="missing field 'answer'"):
        surprisal.predict_ranks({"question": "q", "reasoning": "r"})


def test_unknown_name_or_missing_dir(tiny_lm, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a scorer nor a shipped predictor name.*surprisal"):
        RankPredictor.load("no-such-thing", lm=tiny_lm)
    with pytest.raises(FileNotFoundError, match="neither a scorer nor a shipped predictor name"):
        RankPredictor.load(tmp_path / "missing", lm=tiny_lm)
    if not pretrained_dir().exists():
        with pytest.raises(FileNotFoundError, match="pretrained predictor is missing"):
            RankPredictor.load(lm=tiny_lm)


def test_default_predictor_follows_the_lm_fingerprint(tiny_lm):
    from predictor.predictor_dir import read_metadata
    from predictor.predictor_dir import default_predictor_dir, search_groups, shipped_predictors

    shipped = shipped_predictors()
    assert {"smollm2-joint", "smollm2-joint-loo", "universal"} <= set(shipped)
    assert search_groups(read_metadata(shipped["smollm2-joint-loo"])) == ["loo"]  # the costlier tier, opt-in
    assert default_predictor_dir(None) == pretrained_dir()
    for path in shipped.values():
        meta = read_metadata(path)
        # each LM-specific one-pass predictor is the default for its own LM
        if not meta.get("lm_agnostic") and not search_groups(meta):
            assert default_predictor_dir(types.SimpleNamespace(fingerprint=meta["lm_fingerprint"])) == path
    assert default_predictor_dir(tiny_lm) == pretrained_dir()  # nothing shipped for it
    with pytest.raises(PredictorMismatchError, match="universal"):
        RankPredictor.load(lm=tiny_lm)


def test_a_predictor_with_extra_lm_passes_is_never_the_default(tmp_path, monkeypatch):
    import predictor.predictor_dir as pd

    real = pd.shipped_predictors()["smollm2-joint"]
    meta = pd.read_metadata(real)
    fake = tmp_path / "a-smollm2-loo"  # sorts before smollm2-joint
    fake.mkdir()
    spec = dict(meta["feature_spec"], groups=[*meta["feature_spec"]["groups"], "loo"])
    (fake / "predictor.json").write_text(json.dumps(dict(meta, feature_spec=spec)))
    monkeypatch.setattr(pd, "shipped_predictors", lambda: {"a-smollm2-loo": fake, "smollm2-joint": real})
    assert pd.search_groups(pd.read_metadata(fake)) == ["loo"]
    assert pd.default_predictor_dir(types.SimpleNamespace(fingerprint=meta["lm_fingerprint"])) == real


@pytest.fixture
def fake_dir(tiny_lm, tmp_path, monkeypatch):
    """A predictor directory served by a stand-in `load_predictor` (no dependency on trained files)."""
    scorer = fake_learned(tiny_lm)
    d = tmp_path / "pred"
    d.mkdir()
    (d / "predictor.json").write_text(json.dumps(scorer.metadata))
    fake = types.ModuleType("predictor.predictor_dir")
    fake.load_predictor = lambda path: (FakeRegressor(len(scorer.feature_names)),
                                        json.loads((path / "predictor.json").read_text()))
    monkeypatch.setitem(sys.modules, "predictor.predictor_dir", fake)
    return d


def test_load_predictor_dir_and_lm_mismatch(fake_dir, tiny_lm, tokenizer, chains):
    from conftest import make_tiny_lm

    rp = RankPredictor.load(fake_dir, lm=tiny_lm)
    assert rp.scorer.name == "learned" and rp.scorer.needs_attention
    r = rp.predict_ranks(chains[1], refresh=2)
    assert sorted(r.tolist()) == list(range(1, len(r) + 1))
    other = make_tiny_lm(tokenizer, seed=3)
    with pytest.raises(PredictorMismatchError) as e:
        RankPredictor.load(fake_dir, lm=other)
    assert tiny_lm.fingerprint in str(e.value) and other.fingerprint in str(e.value)
    loose = RankPredictor.load(fake_dir, lm=other, check_lm=False)  # explicit override
    assert len(loose.predict_ranks(chains[0])) == loose.num_tokens(chains[0])


def test_corrupt_predictor_dir_is_a_clear_error(tiny_lm, tmp_path):
    pd = pytest.importorskip("predictor.predictor_dir")
    d = tmp_path / "corrupt"
    d.mkdir()
    (d / "predictor.json").write_text("{not json")
    with pytest.raises(pd.PredictorLoadError, match="predictor.json"):
        RankPredictor.load(d, lm=tiny_lm)


@pytest.fixture(scope="module")
def saved_lm(tiny_lm, tmp_path_factory):
    """The tiny LM saved to a folder and loaded back as the CLI would (`--model DIR`)."""
    from predictor.lm import load_lm

    d = tmp_path_factory.mktemp("lm") / "tiny-llama"
    tiny_lm.model.save_pretrained(d)
    tiny_lm.tokenizer.save_pretrained(d)
    return load_lm(str(d), device="cpu")


@pytest.fixture(scope="module")
def real_dir(saved_lm, tmp_path_factory):
    """A real predictor directory: LightGBM fitted on the tiny LM's features of greedy-free targets."""
    from predictor.features import FeatureSpec, extract_features
    from predictor.predictor_dir import save_predictor
    from predictor.regressors import make_regressor
    from predictor.ranks import normalized_ranks
    from conftest import CHAINS
    from test_scorers import STEP_CHAIN

    spec = FeatureSpec(groups=("logits", "position", "attention"))
    tables = extract_features(saved_lm, CHAINS + [STEP_CHAIN], spec)
    X = [t.values for t in tables]
    y = [normalized_ranks(np.arange(1, len(x) + 1)) for x in X]  # "later tokens kept longer"
    reg = make_regressor("lgbm-regression", n_estimators=20, min_child_samples=2).fit(X, y)
    meta = {"lm_fingerprint": saved_lm.fingerprint, "lm_name": saved_lm.name, "feature_spec": spec.to_dict(),
            "feature_names": tables[0].names, "objective": "joint", "train_data_sha256": "0" * 64,
            "n_train_chains": len(X), "metrics": {}}
    return save_predictor(tmp_path_factory.mktemp("pred") / "tiny-pred", reg, meta)


def test_real_predictor_dir_end_to_end(real_dir, saved_lm, tokenizer, chains, tmp_path):
    from predictor.cli import main

    from conftest import make_tiny_lm

    other_lm = make_tiny_lm(tokenizer, seed=1)  # same architecture, other weights

    rp = RankPredictor.load(real_dir, lm=saved_lm)
    for r in rp.predict_ranks(chains, refresh=2):
        assert sorted(r.tolist()) == list(range(1, len(r) + 1))
    with pytest.raises(PredictorMismatchError, match=f"trained for LM 'tiny-llama'.*{other_lm.fingerprint}"):
        RankPredictor.load(real_dir, lm=other_lm)
    # the CLI with --predictor DIR and the LM's folder
    model_dir = saved_lm.model.config._name_or_path
    src, out = tmp_path / "c.jsonl", tmp_path / "r.jsonl"
    src.write_text("".join(json.dumps(c) + "\n" for c in chains))
    assert main(["predict", "--in", str(src), "--out", str(out), "--predictor", str(real_dir),
                 "--model", str(model_dir)]) == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["c1", "c2"]


def test_predictor_dir_with_missing_regressor_file(real_dir, saved_lm, tmp_path):
    import shutil

    from predictor.predictor_dir import PredictorLoadError

    broken = tmp_path / "broken"
    shutil.copytree(real_dir, broken)
    for f in broken.iterdir():
        if f.name != "predictor.json":
            f.unlink()
    with pytest.raises(PredictorLoadError, match="broken"):
        RankPredictor.load(broken, lm=saved_lm)


def test_hidden_state_predictor_gets_its_hidden_states_through_predict_ranks(tiny_lm, chains, tmp_path):
    """A predictor trained on the hidden group: RankPredictor's pass carries the hidden states it needs,
    and its ranks equal the regressor's on the same feature table."""
    from predictor.features import FeatureSpec, extract_features
    from predictor.predictor_dir import save_predictor
    from predictor.regressors import make_regressor
    from predictor.ranks import scores_to_ranks

    spec = FeatureSpec(groups=("hidden", "position"), hidden_depths=(0.5, 1.0))
    tables = extract_features(tiny_lm, chains, spec)
    y = [np.linspace(0, 1, t.n) for t in tables]
    reg = make_regressor("ridge").fit([t.values for t in tables], y)
    meta = {"lm_fingerprint": tiny_lm.fingerprint, "lm_name": tiny_lm.name, "feature_spec": spec.to_dict(),
            "feature_names": tables[0].names, "objective": "joint", "train_data_sha256": "-",
            "n_train_chains": 2, "metrics": {}}
    rp = RankPredictor.load(save_predictor(tmp_path / "p", reg, meta), lm=tiny_lm)
    assert not rp.scorer.needs_attention and rp.scorer.observe_kwargs["hidden_depths"] == (0.5, 1.0)
    for chain, t in zip(chains, tables):
        want = scores_to_ranks(reg.predict([t.values])[0])
        np.testing.assert_array_equal(rp.predict_ranks(chain), want)


def test_lm_agnostic_predictor_scores_with_an_lm_of_another_shape(tiny_lm, tokenizer, chains, tmp_path):
    """Trained on pooled attention + logits + position + lexical only, a predictor's columns are the
    same for any LM: it loads for an LM of another depth and width; with a per-head group it is refused."""
    from conftest import make_tiny_lm

    from predictor.features import FeatureSpec, extract_features
    from predictor.predictor_dir import save_predictor
    from predictor.regressors import make_regressor
    from predictor.ranks import scores_to_ranks

    def fitted(spec):
        tables = extract_features(tiny_lm, chains, spec)
        reg = make_regressor("ridge").fit([t.values for t in tables], [np.linspace(0, 1, t.n) for t in tables])
        meta = {"lm_fingerprint": tiny_lm.fingerprint, "lm_name": tiny_lm.name, "feature_spec": spec.to_dict(),
                "feature_names": tables[0].names, "objective": "joint", "train_data_sha256": "-",
                "n_train_chains": 2, "metrics": {}, "lm_agnostic": spec.lm_agnostic}
        return reg, save_predictor(tmp_path / "-".join(spec.groups), reg, meta)

    agnostic = FeatureSpec(groups=("pooled_attention", "logits", "position", "lexical"))
    assert agnostic.lm_agnostic and not FeatureSpec().lm_agnostic
    reg, d = fitted(agnostic)
    other = make_tiny_lm(tokenizer, layers=3, heads=2, kv_heads=1, hidden=16, seed=7)
    rp = RankPredictor.load(d, lm=other)
    want = scores_to_ranks(reg.predict([extract_features(other, chains[1], agnostic).values])[0])
    np.testing.assert_array_equal(rp.predict_ranks(chains[1]), want)
    _, d2 = fitted(FeatureSpec(groups=("attention", "logits")))
    with pytest.raises(PredictorMismatchError):
        RankPredictor.load(d2, lm=other)


def test_resume_check_expects_the_default_predictor_of_the_named_lm():
    import argparse

    from predictor.engines.resume_check import expected_scorer_name

    def expected(**kw):
        return expected_scorer_name(argparse.Namespace(**{"scorer": None, "predictor": None, "model": None, **kw}))

    assert expected() == "smollm2-joint"
    assert expected(model="gemma3-270m") == "gemma3-270m-joint"  # what load(lm=gemma) picks by fingerprint
    assert expected(model="gemma-3-270m.Q4_K_M") == "gemma3-270m-joint"  # the display name resolves too
    assert expected(model="/some/other/model-dir") == "smollm2-joint"
    assert expected(model="gemma3-270m", predictor="runs/x/predictor") == "predictor"
    assert expected(model="gemma3-270m", scorer="surprisal") == "surprisal"
    # "learned" names smollm2-joint, as RankPredictor.load names the predictor it loads for it
    assert expected(predictor="learned") == "smollm2-joint" == RankPredictor.load("learned", check_lm=False,
                                                                                   lm=object()).name


def test_predictor_fingerprint_tells_same_named_predictors_apart(real_dir, saved_lm, tmp_path, capsys):
    """`RankPredictor.fingerprint` (hence the labeler's `proposer_fingerprint`) changes with what the
    predictor scores with, not with select-prune's settings; a labels file written with one proposer
    is not resumed with another of the same folder name."""
    import shutil

    from predictor.cli import main
    from predictor.predictor_dir import load_predictor, predictor_fingerprint, save_predictor
    from predictor.ranked import read_ranked

    from conftest import CHAINS

    a, b = tmp_path / "a" / "tiny-pred", tmp_path / "b" / "tiny-pred"
    shutil.copytree(real_dir, a)
    fa = predictor_fingerprint(a)
    assert len(fa) == 12 and fa == predictor_fingerprint(real_dir)
    meta_path = a / "predictor.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "prune": {"gap_cost": 9.0}, "metrics": {"val": 1}}))
    assert predictor_fingerprint(a) == fa  # select-prune's rewrite keeps the identity
    _, meta_b = load_predictor(real_dir)  # a different regressor under the same name: other targets
    from predictor.features import FeatureSpec, extract_features
    from predictor.regressors import make_regressor

    tables = extract_features(saved_lm, CHAINS, FeatureSpec.from_dict(meta_b["feature_spec"]))
    other = make_regressor("lgbm-regression", n_estimators=7, min_child_samples=2).fit(
        [t.values for t in tables], [np.linspace(1, 0, t.n) for t in tables])
    save_predictor(b, other, {k: meta_b[k] for k in ("lm_fingerprint", "lm_name", "feature_spec", "feature_names",
                                                     "objective", "train_data_sha256", "n_train_chains", "metrics")})
    assert predictor_fingerprint(b) != fa
    assert RankPredictor.load(a, lm=saved_lm).fingerprint == fa
    assert RankPredictor.load("surprisal", lm=saved_lm).fingerprint is None

    src, out = tmp_path / "c.jsonl", tmp_path / "r.jsonl"
    src.write_text("".join(json.dumps(c) + "\n" for c in CHAINS))
    model_dir = str(saved_lm.model.config._name_or_path)
    run = ["label", "--in", str(src), "--out", str(out), "--model", model_dir, "--threads", "1", "--budget", "0.3"]
    assert main([*run, "--proposer", str(a), "--limit", "1"]) == 0
    rec = read_ranked(out)[0]
    assert rec["proposer"] == "tiny-pred" and rec["proposer_fingerprint"] == fa
    capsys.readouterr()
    assert main([*run, "--proposer", str(b)]) == 2
    err = capsys.readouterr().err
    assert "'proposer_fingerprint'" in err and "Traceback" not in err
    assert len(read_ranked(out)) == 1
    assert main([*run, "--proposer", str(a)]) == 0 and len(read_ranked(out)) == len(CHAINS)
