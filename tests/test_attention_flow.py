"""Value-norm-weighted and multi-hop attention statistics (predictor.attention_flow, issue 31) against a
slow reference: plain loops over eager attention weights, value vectors from v_proj hooks, the o_proj
weight and the residual stream, on tiny float64 models (grouped-query Llama; Gemma 3 with a sliding window)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import CHAINS, make_tiny_gemma3, make_tiny_lm
from predictor.attention_flow import FLOW_BINS, FLOW_STATS, MULTIHOP_STATS, bin_pairs, depth_bins
from predictor.chains import as_chain
from predictor.features import DEFAULT_GROUPS, FeatureSpec, extract_features, feature_names
from predictor.layout import encode_chain
from predictor.observe import attention_modules, observe, observe_batch


def tiny_gemma3(tokenizer, window: int = 8):
    return make_tiny_gemma3(tokenizer, window=window, seed=1)


@torch.no_grad()
def reference_flow(lm, chain) -> dict[str, np.ndarray]:
    """The statistics by plain loops: eager weights, v_proj outputs, o_proj weights, residual inputs."""
    lay = encode_chain(lm.tokenizer, as_chain(chain), lm.max_length)
    p, n, t = len(lay.prompt_ids), lay.n, lay.total
    model, mods = lm.model, attention_modules(lm.model)
    values: dict[int, np.ndarray] = {}
    hooks = [m.v_proj.register_forward_hook(lambda _m, _i, out, l=l: values.__setitem__(l, out[0].double().numpy()))
             for l, m in enumerate(mods)]
    old = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        out = model(torch.tensor([lay.sequence()]), output_attentions=True, output_hidden_states=True)
    finally:
        model.set_attn_implementation(old)
        for h in hooks:
            h.remove()
    L, H = len(mods), out.attentions[0].shape[1]
    stats = {s: np.zeros((L, H, n)) for s in FLOW_STATS}
    ans, rr = np.zeros((L, n)), np.zeros((L, n, n))
    for l in range(L):
        A = out.attentions[l][0].double().numpy()
        x = out.hidden_states[l][0].double().numpy()  # the residual stream entering layer l
        wo = mods[l].o_proj.weight.double().numpy()
        d = wo.shape[1] // H
        g = H // (values[l].shape[1] // d)  # query heads per KV head
        for h in range(H):
            kv = h // g
            for j in range(n):
                vn = np.linalg.norm(wo[:, h * d:(h + 1) * d] @ values[l][p + j, kv * d:(kv + 1) * d])
                stats["vnorm"][l, h, j] = vn
                contrib = {i: A[h, i, p + j] * vn / np.linalg.norm(x[i]) for i in range(p, t)}
                stats["vn_answer"][l, h, j] = np.mean([contrib[i] for i in range(p + n, t)])
                later = [contrib[i] for i in range(p + j + 1, p + n)]
                stats["vn_later"][l, h, j] = np.mean(later) if later else 0.0
                stats["vn_later_max"][l, h, j] = max(later) if later else 0.0
        for j in range(n):
            ans[l, j] = np.mean([A[h, i, p + j] for h in range(H) for i in range(p + n, t)])
            for i in range(n):
                rr[l, i, j] = np.mean([A[h, p + i, p + j] for h in range(H)])
    hop2 = np.array([[sum(ans[l, i] * rr[l, i, j] for i in range(j + 1, n)) for j in range(n)] for l in range(L)])
    bins = depth_bins(L, FLOW_BINS)
    hop2_bins = []
    for b1, b2 in bin_pairs():
        u = np.mean([ans[l] for l in bins[b2]], axis=0)
        s = np.mean([np.tril(rr[l], -1) for l in bins[b1]], axis=0)
        hop2_bins.append([sum(u[i] * s[i, j] for i in range(n)) for j in range(n)])
    paths = []
    for l in range(L):  # answer at layer l, then down through the chain at layers l-1 .. 0
        vec = ans[l]
        for m in range(l - 1, -1, -1):
            vec = vec @ ((np.eye(n) + rr[m]) / 2)
        paths.append(vec)
    return {**stats, "hop2": hop2, "hop2_bins": np.array(hop2_bins), "rollout": np.mean(paths, axis=0)[None],
            "rollout_last": paths[-1][None]}


@pytest.fixture(scope="module")
def gemma(tokenizer):
    return tiny_gemma3(tokenizer)


@pytest.mark.parametrize("method", ["chunked", "eager"])
@pytest.mark.parametrize("which", ["llama", "gemma3"])
def test_flow_statistics_equal_the_loop_reference(tiny_lm, gemma, method, which):
    lm = tiny_lm if which == "llama" else gemma
    obs = observe(lm, CHAINS[1], flow=True, method=method)
    ref = reference_flow(lm, CHAINS[1])
    assert set(obs.flow) == set(FLOW_STATS) | set(MULTIHOP_STATS)
    for k, r in ref.items():
        assert obs.flow[k].shape == r.shape, k
        np.testing.assert_allclose(obs.flow[k], r, atol=1e-5, rtol=1e-5, err_msg=k)


def test_flow_leaves_the_pass_unchanged_and_batches_like_single_chains(tiny_lm):
    plain = observe_batch(tiny_lm, CHAINS)
    flow = observe_batch(tiny_lm, CHAINS, flow=True)
    alone = [observe(tiny_lm, c, flow=True, attention=False, probe=None) for c in CHAINS]
    assert tiny_lm.model.config._attn_implementation == "sdpa"
    for a, b, c in zip(plain, flow, alone):
        np.testing.assert_array_equal(a.logprob, b.logprob)
        for k in a.attn:
            np.testing.assert_array_equal(a.attn[k], b.attn[k])
        for k in b.flow:
            np.testing.assert_allclose(b.flow[k], c.flow[k], atol=1e-6, err_msg=k)
        assert not a.flow


def test_feature_columns_are_the_statistics_under_their_names(tiny_lm):
    spec = FeatureSpec(groups=("value_norm", "multihop"))
    obs = observe(tiny_lm, CHAINS[1], attention=False, probe=None, flow=True)
    table = extract_features(tiny_lm, CHAINS[1], spec)
    names, groups = feature_names(spec, tiny_lm.num_layers, tiny_lm.num_heads)
    assert table.names == names and table.groups == groups and table.values.shape == (obs.n, len(names))
    assert set(groups) == {"value_norm", "multihop"}
    f = obs.flow
    np.testing.assert_allclose(table.column("vn.answer.L01.H03"), f["vn_answer"][1, 3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table.column("vn.later.layer_mean.L00"), f["vn_later"][0].mean(0), rtol=1e-5)
    np.testing.assert_allclose(table.column("vn.vnorm.all_max"), f["vnorm"].max((0, 1)), rtol=1e-5)
    np.testing.assert_allclose(table.column("hop.hop2.L01"), f["hop2"][1], rtol=1e-5, atol=1e-7)
    k = bin_pairs().index((0, 3))
    np.testing.assert_allclose(table.column(f"hop.hop2_bins.r0a3of{FLOW_BINS}"), f["hop2_bins"][k], rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(table.column("hop.rollout"), f["rollout"][0], rtol=1e-5)
    per_head = feature_names(FeatureSpec(groups=("value_norm",), per_head=False), 2, 4)[0]
    assert not any(".H0" in c for c in per_head) and "vn.answer.layer_mean.L01" in per_head


def test_flow_groups_are_off_by_default(tiny_lm):
    assert "value_norm" not in DEFAULT_GROUPS and "multihop" not in DEFAULT_GROUPS
    spec = FeatureSpec()
    assert not spec.needs_flow and "flow" not in spec.observe_kwargs()
    assert FeatureSpec(groups=("logits", "multihop")).observe_kwargs()["flow"] is True
    assert not observe(tiny_lm, CHAINS[0]).flow
    names, _ = feature_names(spec, 2, 4)
    assert not any(c.startswith(("vn.", "hop.")) for c in names)
    with pytest.raises(ValueError, match="flow"):
        from predictor.features import features_from_observation

        features_from_observation(observe(tiny_lm, CHAINS[0], attention=False, probe=None),
                                  FeatureSpec(groups=("value_norm",)))


def test_grouped_query_heads_share_values_but_not_output_slices(tokenizer):
    lm = make_tiny_lm(tokenizer, layers=1, heads=4, kv_heads=1, seed=3)
    obs = observe(lm, CHAINS[0], flow=True, attention=False, probe=None)
    ref = reference_flow(lm, CHAINS[0])
    np.testing.assert_allclose(obs.flow["vnorm"], ref["vnorm"], rtol=1e-6)
    assert not np.allclose(obs.flow["vnorm"][0, 0], obs.flow["vnorm"][0, 1])
    np.testing.assert_allclose(obs.flow["rollout_last"], ref["rollout_last"], rtol=1e-6, atol=1e-9)


def test_adding_the_flow_groups_changes_no_other_column(tiny_lm):
    wide = extract_features(tiny_lm, CHAINS, FeatureSpec(groups=DEFAULT_GROUPS + ("value_norm", "multihop")))
    plain = extract_features(tiny_lm, CHAINS, FeatureSpec(groups=DEFAULT_GROUPS))
    for w, p in zip(wide, plain):
        sub = w.select(DEFAULT_GROUPS)
        assert sub.names == p.names
        np.testing.assert_array_equal(sub.values, p.values)
