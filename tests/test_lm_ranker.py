"""The fine-tuned LM scorer: recovers a planted ranking on a tiny model, round-trips through
safetensors without pickle, plugs into RankPredictor, refuses another LM, never changes the base LM."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_lm
from scipy.stats import rankdata

from predictor.chains import as_chain
from predictor.layout import encode_chain
from predictor.lm_ranker import LMRanker, RankExample
from predictor.regressors.base import mean_chain_spearman

QUEUE = Path(__file__).resolve().parents[1] / "data" / "chains" / "gsm8k-train-20-64.jsonl"


def planted_examples(tokenizer, k: int):
    """GSM8K chains whose target ranks a fixed pseudo-random value of each token id."""
    chains = [json.loads(line) for line in QUEUE.open()][:k]
    out = []
    for c in chains:
        lay = encode_chain(tokenizer, as_chain(c))
        s = np.array([(t * 7919) % 101 for t in lay.reasoning_ids], float) + 1e-3 * np.arange(lay.n)
        out.append(RankExample(lay, list(range(lay.n)), (rankdata(s) - 1) / (lay.n - 1)))
    return out


@pytest.fixture(scope="module")
def setup(tokenizer):
    lm = make_tiny_lm(tokenizer, dtype=torch.float32)
    ex = planted_examples(tokenizer, 60)
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    ranker = LMRanker(max_epochs=6, lr=3e-3, batch_size=8, head_dim=32).fit(lm, ex[:40], ex[40:50])
    return lm, ex, ranker, before


def test_recovers_a_planted_ranking_and_leaves_the_base_lm_alone(setup):
    lm, ex, ranker, before = setup
    pred = ranker.score_layouts([e.layout for e in ex[50:]])
    assert [p.shape for p in pred] == [(e.layout.n,) for e in ex[50:]]
    assert mean_chain_spearman(pred, [e.y for e in ex[50:]]) > 0.5
    assert all(torch.equal(v, lm.model.state_dict()[k]) for k, v in before.items())


def test_save_load_roundtrip_without_pickle(setup, tmp_path, monkeypatch):
    lm, ex, ranker, _ = setup
    ranker.save(tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["head.safetensors", "lora.safetensors",
                                                                  "regressor.json"]
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    again = LMRanker.load(tmp_path / "r", lm)
    a = ranker.score_layouts([e.layout for e in ex[50:53]])
    b = again.score_layouts([e.layout for e in ex[50:53]])
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_rank_predictor_uses_it_with_no_base_forward_and_refuses_another_lm(setup, tmp_path, tokenizer):
    from predictor.predictor_dir import save_predictor
    from predictor.rank_predictor import RankPredictor
    from predictor.scorers.learned import PredictorMismatchError

    lm, ex, ranker, _ = setup
    meta = {"lm_fingerprint": lm.fingerprint, "lm_name": lm.name, "feature_spec": {}, "feature_names": [],
            "objective": "joint", "train_data_sha256": "-", "n_train_chains": 40, "metrics": {}}
    d = save_predictor(tmp_path / "pred", ranker, meta)
    rp = RankPredictor.load(d, lm=lm)
    calls = []
    hook = lm.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        ranks = rp.predict_ranks(as_chain({"question": "q?", "reasoning": "Tom has 3 + 4 = 7 apples.", "answer": "7"}))
    finally:
        hook.remove()
    assert not calls  # the adapted copy ran, the base LM did not
    assert sorted(ranks) == list(range(1, len(ranks) + 1))
    chain = {"question": "q?", "reasoning": "Each pen costs 2 dollars.", "answer": "2"}
    r5 = rp.predict_ranks(chain, refresh=3)
    assert sorted(r5) == list(range(1, len(r5) + 1))
    other = make_tiny_lm(tokenizer, dtype=torch.float32, seed=5)
    with pytest.raises(PredictorMismatchError):
        RankPredictor.load(d, lm=other)


def test_adapter_file_missing_weights_is_refused(setup, tmp_path):
    from safetensors.torch import load_file, save_file

    from predictor.regressors.base import RegressorLoadError

    lm, _, ranker, _ = setup
    ranker.save(tmp_path / "r")
    lora = load_file(str(tmp_path / "r" / "lora.safetensors"))
    dropped = sorted(lora)[0]
    save_file({k: v for k, v in lora.items() if k != dropped}, str(tmp_path / "r" / "lora.safetensors"))
    with pytest.raises(RegressorLoadError, match="missing"):
        LMRanker.load(tmp_path / "r", lm)
