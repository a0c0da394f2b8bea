"""Feature tables against brute force from `output_attentions` on a tiny random Llama."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_lm

from predictor.chains import as_chain
from predictor.features import (
    ATTN_HEAD_STATS, DEFAULT_GROUPS, FEATURE_GROUPS, FeatureSpec, FeatureTable, extract_features,
    feature_names, features_from_observation,
)
from predictor.layout import encode_chain
from predictor.lexical import CATEGORIES
from predictor.observe import DEFAULT_PROBE, observe

L, H = 3, 4
ALL = FeatureSpec(groups=FEATURE_GROUPS)


@pytest.fixture(scope="module")
def lm(tokenizer):
    return make_tiny_lm(tokenizer, layers=L, heads=H, kv_heads=2, seed=1)


def _brute(lm, chain, probe=DEFAULT_PROBE):
    """Per-head stats [L, H, n] straight from output_attentions (all maps held at once)."""
    lay = encode_chain(lm.tokenizer, as_chain(chain))
    ids = lay.sequence() + list(lm.tokenizer(probe, add_special_tokens=False)["input_ids"])
    lm.model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            att = lm.model(input_ids=torch.tensor([ids]), output_attentions=True).attentions
    finally:
        lm.model.set_attn_implementation("sdpa")
    w = torch.stack([a[0] for a in att]).numpy()  # [L, H, T', T']
    p, n, T = len(lay.prompt_ids), lay.n, lay.total
    ref = {s: np.zeros((L, H, n)) for s in (*ATTN_HEAD_STATS, "probe_mean", "received_sum")}
    for i in range(n):
        k = p + i
        later = w[:, :, p + i + 1:p + n, k]
        ref["answer_mean"][..., i] = w[:, :, p + n:T, k].mean(-1)
        ref["later_mean"][..., i] = later.mean(-1) if later.shape[-1] else 0.0
        ref["later_max"][..., i] = later.max(-1) if later.shape[-1] else 0.0
        ref["last"][..., i] = w[:, :, T - 1, k]
        ref["probe_mean"][..., i] = w[:, :, T:, k].mean(-1)
        ref["received_sum"][..., i] = w[:, :, p:T, k].sum(-1)
    return ref


def test_attention_columns_match_brute_force(lm, chains):
    for chain in chains:
        t = extract_features(lm, chain, ALL)
        ref = _brute(lm, chain)
        for stat, prefix in [(s, f"attn.{s}") for s in ATTN_HEAD_STATS] + [("probe_mean", "probe")]:
            a = ref[stat]
            for l in range(L):
                for h in range(H):
                    np.testing.assert_allclose(t.column(f"{prefix}.L{l:02d}.H{h:02d}"), a[l, h], atol=1e-5)
                np.testing.assert_allclose(t.column(f"{prefix}.layer_mean.L{l:02d}"), a[l].mean(0), atol=1e-5)
                np.testing.assert_allclose(t.column(f"{prefix}.head_max.L{l:02d}"), a[l].max(0), atol=1e-5)
            np.testing.assert_allclose(t.column(f"{prefix}.all_mean"), a.mean((0, 1)), atol=1e-5)
            np.testing.assert_allclose(t.column(f"{prefix}.all_max"), a.max((0, 1)), atol=1e-5)
            m = a.mean((0, 1))
            np.testing.assert_allclose(t.column(f"{prefix}.all_mean_rel"), m / m.mean(), rtol=1e-4)
        rs = ref["received_sum"]
        np.testing.assert_allclose(t.column("attn.received_sum.all_mean"), rs.mean((0, 1)), atol=1e-5)
        np.testing.assert_allclose(t.column("attn.received_sum.layer_mean.L02"), rs[2].mean(0), atol=1e-5)
        # pooled: quantiles over the heads of a depth bin of the chain-normalized stat (L=3 < 4 bins)
        rel = ref["last"] / ref["last"].mean(-1, keepdims=True)
        np.testing.assert_allclose(t.column("pooled.last.d3of4.q100"), rel[2].max(0), rtol=1e-4)
        np.testing.assert_allclose(t.column("pooled.last.d0of4.q000"), rel[0].min(0), rtol=1e-4)


def test_non_attention_columns(lm, chains):
    chain = chains[1]
    obs = observe(lm, chain, hidden_layers=ALL.hidden_layers(L), flow=True)
    t = features_from_observation(obs, ALL)
    n = obs.n
    np.testing.assert_allclose(t.column("logit.surprisal"), -obs.logprob, rtol=1e-6)
    np.testing.assert_allclose(t.column("logit.entropy"), obs.entropy, rtol=1e-6)
    np.testing.assert_allclose(t.column("logit.log_rank"), np.log(obs.token_rank), atol=1e-6)
    np.testing.assert_allclose(t.column("logit.surprisal_next")[:-1], -obs.logprob[1:], rtol=1e-6)
    assert t.column("logit.surprisal_prev")[0] == 0 and t.column("logit.surprisal_next")[-1] == 0
    np.testing.assert_allclose(t.column("pos.frac"), np.arange(n) / (n - 1), atol=1e-6)
    np.testing.assert_array_equal(t.column("pos.to_answer"), np.arange(n, 0, -1))
    cats = t.select(["lexical"]).values[:, [t.select(["lexical"]).names.index(f"lex.cat.{c}") for c in CATEGORIES]]
    np.testing.assert_array_equal(cats.sum(1), 1)
    digit = t.column("lex.is_digit").astype(bool)
    assert digit.any() and all(any(ch.isdigit() for ch in obs.tokens[i]) for i in np.flatnonzero(digit))
    assert (t.column("lex.cat.symbolic_math")[digit] == 1).all()


def test_names_stable_unique_and_predictable(lm, chains):
    tables = extract_features(lm, chains, ALL)
    assert isinstance(tables, list) and len(tables) == 2
    names, groups = feature_names(ALL, L, H, hidden_size=32)
    for t in tables:
        assert t.names == names and t.groups == groups
    assert len(set(names)) == len(names)
    assert names.count("attn.answer_mean.L01.H03") == 1 and "probe.L02.H00" in names
    # counts: 4 per-head stats x (L*H heads + 2L layer aggregates + 3 chain aggregates) + 2 extra x (L + 3)
    assert groups.count("attention") == 4 * (L * H + 2 * L + 3) + 2 * (L + 3)
    assert groups.count("probe") == L * H + 2 * L + 4
    assert groups.count("pooled_attention") == 5 * 4 * 5
    # non-attention columns do not depend on the LM's shape
    shaped = ("attn.", "probe", "pooled.", "hid.", "vn.", "hop.hop2.L")
    assert [x for x in names if not x.startswith(shaped)] == \
        [x for x in feature_names(ALL, 30, 9, hidden_size=576)[0] if not x.startswith(shaped)]
    assert [x for x, g in zip(names, groups) if g == "logits"][:3] == ["logit.surprisal", "logit.entropy", "logit.log_rank"]
    assert {"pos.frac", "pos.to_answer", "lex.is_digit", "lex.is_operator", "lex.is_punct", "lex.is_space",
            *(f"lex.cat.{c}" for c in CATEGORIES)} <= set(names)


def test_all_finite_including_edge_chains(lm):
    edge = [{"question": "Q?", "reasoning": "7", "answer": "7"},
            {"question": "Why?", "reasoning": "First line.\n\nSecond: 2*3=6\nSo 6.", "answer": "6"}]
    for chain in edge:
        t = extract_features(lm, chain, ALL)
        assert t.values.dtype == np.float32 and np.isfinite(t.values).all()
        assert t.n == encode_chain(lm.tokenizer, as_chain(chain)).n


def test_probe_never_leaks_into_rows(lm, chains):
    chain = chains[0]
    n = encode_chain(lm.tokenizer, as_chain(chain)).n
    a = extract_features(lm, chain, ALL)
    b = extract_features(lm, chain, FeatureSpec(groups=FEATURE_GROUPS, probe="\nStop. Final answer now:"))
    assert a.n == b.n == n  # rows are the reasoning tokens only, never probe tokens
    for g in ("attention", "logits", "position", "lexical"):
        np.testing.assert_allclose(a.select([g]).values, b.select([g]).values, atol=1e-6, err_msg=g)
    assert not np.allclose(a.select(["probe"]).values, b.select(["probe"]).values)
    # without the probe group the forward runs without a probe and the other columns are unchanged
    c = extract_features(lm, chain, FeatureSpec(groups=("attention", "logits")))
    np.testing.assert_allclose(c.values, a.select(["attention", "logits"]).values, atol=1e-6)


def test_select_and_ablation_families(lm, chains):
    t = extract_features(lm, chains[0])
    assert set(t.groups) == set(DEFAULT_GROUPS)
    for fam in ({"attention", "probe"}, {"logits"}, {"position", "lexical"}, {"logits", "position", "lexical"}):
        s = t.select(fam)
        assert set(s.groups) == fam and s.n == t.n
        assert s.names == [x for x, g in zip(t.names, t.groups) if g in fam]
    with pytest.raises(ValueError, match="unknown feature groups"):
        t.select(["attn"])


def test_non_attention_spec_skips_attention_and_kept_rows(lm, chains):
    spec = FeatureSpec(groups=("logits", "position", "lexical"))
    assert not spec.needs_attention
    full = extract_features(lm, chains[1], spec)
    kept = [0, 2, 3, 7]
    part = extract_features(lm, chains[1], spec, kept=kept)
    assert part.n == len(kept)
    np.testing.assert_allclose(part.column("logit.surprisal")[0], full.column("logit.surprisal")[0], rtol=1e-5)
    with pytest.raises(ValueError, match="need an observation with attention"):
        features_from_observation(observe(lm, chains[0], attention=False), FeatureSpec())


def test_spec_roundtrip_and_fingerprint():
    spec = FeatureSpec(groups=("probe", "attention"), per_head=False)
    assert spec.groups == ("attention", "probe")  # canonical order
    back = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and back.fingerprint() == spec.fingerprint()
    assert FeatureSpec().fingerprint() != spec.fingerprint()
    assert FeatureSpec(version=99).fingerprint() != FeatureSpec().fingerprint()
    with pytest.raises(ValueError, match="unknown feature groups"):
        FeatureSpec(groups=("attention", "surprise"))
    with pytest.raises(ValueError, match="unknown FeatureSpec fields"):
        FeatureSpec.from_dict({"groups": ["logits"], "bogus": 1})
    with pytest.raises(ValueError):
        FeatureTable(["a"], ["logits"], np.zeros((3, 2), np.float32))


def test_per_head_off_keeps_only_aggregates(lm, chains):
    t = extract_features(lm, chains[0], FeatureSpec(groups=("attention", "probe"), per_head=False))
    assert not any(".H0" in x for x in t.names)
    assert "attn.later_max.head_max.L02" in t.names and "probe.all_mean" in t.names


def test_hidden_columns_are_the_residual_stream_at_the_reasoning_tokens(lm, chains):
    spec = FeatureSpec(groups=("hidden", "position"), hidden_depths=(0.34, 1.0))
    assert spec.hidden_layers(L) == (1, 3) and not spec.needs_attention
    chain = chains[1]
    t = extract_features(lm, chain, spec)
    lay = encode_chain(lm.tokenizer, as_chain(chain))
    with torch.no_grad():
        hs = lm.model(input_ids=torch.tensor([lay.sequence()]), output_hidden_states=True).hidden_states
    p, n = len(lay.prompt_ids), lay.n
    for l in (1, 3):
        cols = [i for i, name in enumerate(t.names) if name.startswith(f"hid.L{l:02d}.")]
        assert len(cols) == 32
        np.testing.assert_allclose(t.values[:, cols], hs[l][0, p:p + n].numpy(), rtol=1e-5, atol=1e-5)
    # a pruned state's rows are the survivors' hidden states in the shorter sequence
    kept = [0, 2, 5]
    ts = extract_features(lm, chain, spec, kept=kept)
    assert ts.n == 3
    with pytest.raises(ValueError, match="hidden_depths"):
        FeatureSpec(groups=("hidden",), hidden_depths=(0.0,))
