"""oneDNN linears: same model, same greedy labels as torch's default CPU path, up to float32 round-off."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from predictor.cli import main
from predictor.cpu_matmul import onednn_applicable, use_onednn_linears, uses_onednn
from predictor.greedy import SearchOptions, greedy_prune
from predictor.lm import LM

from conftest import CHAINS, make_tiny_lm

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


@pytest.fixture(scope="module")
def pair(tokenizer):
    """(torch default, oneDNN) copies of one float32 tiny Llama."""
    lm = make_tiny_lm(tokenizer, dtype=torch.float32)
    fast = LM(model=copy.deepcopy(lm.model), tokenizer=lm.tokenizer, name=lm.name, fingerprint=lm.fingerprint)
    linears = sum(isinstance(m, torch.nn.Linear) for m in fast.model.modules())
    assert use_onednn_linears(fast.model) == linears == 2 * 7 + 1  # q k v o gate up down per layer, head
    return lm, fast


def test_conversion_swaps_linears_and_keeps_the_outputs(pair):
    lm, fast = pair
    assert uses_onednn(fast.model) and not uses_onednn(lm.model)
    assert not any(isinstance(m, torch.nn.Linear) for m in fast.model.modules())
    x = torch.tensor([[1, 50, 700, 3000, 12]])
    with torch.no_grad():
        ref, got = lm.model(input_ids=x).logits, fast.model(input_ids=x).logits
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("objective", ["joint", "answer"])
def test_greedy_labels_agree_with_the_default_path(pair, objective):
    lm, fast = pair
    for chain in CHAINS:
        ref = greedy_prune(lm, chain, SearchOptions(objective))
        got = greedy_prune(fast, chain, SearchOptions(objective, batch_tokens=7))  # also across block boundaries
        assert got.order == ref.order
        np.testing.assert_allclose(got.trajectory, ref.trajectory, atol=1e-3)


def test_refuses_models_onednn_cannot_take(tokenizer):
    lm64 = make_tiny_lm(tokenizer, dtype=torch.float64)
    assert not onednn_applicable(lm64.model)
    with pytest.raises(ValueError, match="float32 model on CPU"):
        use_onednn_linears(lm64.model)
    assert not uses_onednn(lm64.model)


def test_label_cli_records_the_matmul_and_matches_the_default(tmp_path, tokenizer):
    lm = make_tiny_lm(tokenizer, dtype=torch.float32)
    model_dir = tmp_path / "tiny"
    lm.model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    chains = tmp_path / "c.jsonl"
    chains.write_text("".join(json.dumps(c) + "\n" for c in CHAINS))
    recs = {}
    for matmul in ("onednn", "default"):
        out = tmp_path / f"{matmul}.jsonl"
        assert main(["label", "--in", str(chains), "--out", str(out), "--model", str(model_dir),
                     "--device", "cpu", "--matmul", matmul]) == 0
        recs[matmul] = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["matmul"] == "onednn" for r in recs["onednn"])
    assert all("matmul" not in r for r in recs["default"])
    assert [r["order"] for r in recs["onednn"]] == [r["order"] for r in recs["default"]]
