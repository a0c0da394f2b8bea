"""Shared fixtures: a tiny random Llama with the embedded LM's tokenizer (fast, offline)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


def load_script(relpath: str):
    """A script outside the package (benchmarks/..., data/...) imported as a module, by its path under the repo."""
    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tokenizer():
    from predictor.lm import cache_root, load_lm  # noqa: F401
    from transformers import AutoTokenizer

    from predictor.lm import _resolve

    _, src = _resolve(None)
    return AutoTokenizer.from_pretrained(src)


@pytest.fixture(scope="session")
def tokenizer():
    return _tokenizer()


def make_tiny_lm(tokenizer, layers: int = 2, heads: int = 4, kv_heads: int = 2, hidden: int = 32,
                 dtype=torch.float64, seed: int = 0, attn: str = "sdpa"):
    from transformers import LlamaConfig, LlamaForCausalLM

    from predictor.lm import wrap_lm

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      max_position_embeddings=512, eos_token_id=tokenizer.eos_token_id,
                      attn_implementation=attn)
    model = LlamaForCausalLM(cfg).to(dtype)
    # random init is near-uniform; scale up so that deletions matter and ties are unlikely
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0 if p.ndim > 1 else 1.0)
    return wrap_lm(model, tokenizer, name=f"tiny-llama-{layers}x{heads}")


@pytest.fixture(scope="session")
def tiny_lm(tokenizer):
    return make_tiny_lm(tokenizer)


@pytest.fixture(scope="session")
def model_dir(tiny_lm, tmp_path_factory) -> str:
    """`tiny_lm` saved as a Hugging Face model directory, for commands that take --model DIR."""
    d = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    tiny_lm.model.save_pretrained(d)
    tiny_lm.tokenizer.save_pretrained(d)
    return str(d)


CHAINS = [
    {"id": "c1", "question": "Tom has 3 apples and buys 4 more. How many?",
     "reasoning": "Tom has 3 + 4 = 7 apples.", "answer": "7"},
    {"id": "c2", "question": "A pen costs $2. How much do 5 pens cost?",
     "reasoning": "Each pen costs 2 dollars, so 5 pens cost 5 * 2 = 10 dollars in total.", "answer": "10"},
]


@pytest.fixture
def chains():
    return [dict(c) for c in CHAINS]


def write_ranked(path, chains, tiny_lm, seed=0):
    """Ranked records in the real schema; the orders are random permutations (the pipeline does not care)."""
    from predictor.chains import as_chain
    from predictor.layout import encode_chain
    from predictor.ranked import validate_ranked

    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for c in chains:
            lay = encode_chain(tiny_lm.tokenizer, as_chain(c), tiny_lm.max_length)
            n = len(lay.reasoning_ids)
            order = rng.permutation(n).tolist()
            ranks = np.empty(n, dtype=int)
            ranks[order] = np.arange(1, n + 1)
            rec = {**c, "lm": tiny_lm.fingerprint, "objective": "joint", "stride": 1,
                   "prompt_ids": lay.prompt_ids, "reasoning_ids": lay.reasoning_ids, "answer_ids": lay.answer_ids,
                   "tokens": [tiny_lm.tokenizer.decode([t]) for t in lay.reasoning_ids], "order": order,
                   "ranks": ranks.tolist(), "trajectory": [0.0] * n, "full_objective": 0.0, "seconds": 0.0}
            validate_ranked(rec, "test")
            f.write(json.dumps(rec) + "\n")
    return path


def make_tiny_gemma3(tokenizer, window: int = 512, seed: int = 0, bos_token_id: int | None = None,
                     eos_token_id: int | None = None):
    """A 3-layer Gemma 3 (sliding, full, sliding attention; 4 query heads sharing 1 KV head) in float64,
    weights scaled x4 so attention is far from uniform; bos/eos default to the tokenizer's."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from predictor.lm import wrap_lm

    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                           num_attention_heads=4, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
                           sliding_window=window, layer_types=["sliding_attention", "full_attention",
                                                               "sliding_attention"],
                           bos_token_id=tokenizer.bos_token_id if bos_token_id is None else bos_token_id,
                           eos_token_id=tokenizer.eos_token_id if eos_token_id is None else eos_token_id,
                           pad_token_id=0, attn_implementation="sdpa")
    model = Gemma3ForCausalLM(cfg).to(torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0 if p.ndim > 1 else 1.0)
    return wrap_lm(model, tokenizer, name="tiny-gemma3")


def make_predictor(lm, directory, groups, prune=None):
    """A ridge predictor on the tiny LM's features of `groups`, with a "prune" entry when given."""
    from predictor.features import FeatureSpec, extract_features
    from predictor.predictor_dir import save_predictor
    from predictor.regressors import make_regressor

    spec = FeatureSpec(groups=groups)
    tables = extract_features(lm, CHAINS, spec)
    reg = make_regressor("ridge").fit([t.values for t in tables], [np.linspace(0, 1, t.n) for t in tables])
    meta = {"lm_fingerprint": lm.fingerprint, "lm_name": lm.name, "feature_spec": spec.to_dict(),
            "feature_names": tables[0].names, "objective": "joint", "train_data_sha256": "-",
            "n_train_chains": len(tables), "metrics": {}, **({"prune": prune} if prune else {})}
    return save_predictor(directory, reg, meta)
