"""Per-reasoning-token feature tables from one forward pass (an `Observation`).

Columns have stable names and belong to one feature group each, so that evaluation can compare
attention features with non-attention signals (logits, position, lexical function):

    attention         attn.<stat>.L03.H07 per layer/head for stat in ATTN_HEAD_STATS, plus per-layer
                      aggregates over heads (attn.<stat>.layer_mean.L03, attn.<stat>.head_max.L03) and
                      chain-level ones (attn.<stat>.all_mean, .all_max, .all_mean_rel); spec.extra_stats
                      (H2O received_sum, SnapKV window_mean) get aggregates only
    probe             "Think Clearly" probe: probe.L03.H07, probe.layer_mean.L03, probe.head_max.L03,
                      probe.all_mean, probe.all_max, probe.all_mean_rel, probe.step_mean
    logits            logit.surprisal, logit.entropy, logit.log_rank, ... and neighbours' values
    position          pos.frac, pos.to_answer, step features (steps = lines of the reasoning)
    lexical           lex.is_digit, ..., lex.cat.<category> (predictor.lexical.CATEGORIES)
    pooled_attention  architecture-agnostic: per depth bin (relative depth), quantiles over all heads
                      of each stat divided by its chain mean: pooled.<stat>.d1of4.q50
    hidden            the residual stream at the token after the decoder layers at relative depths
                      spec.hidden_depths (KVzap-style inputs, Jegou et al. 2025): hid.L15.d000..d575
    value_norm        attention weighted by ||W_o^h v_j|| / ||x_i|| (predictor.attention_flow): vn.answer.L03.H07
                      (per head with spec.per_head), per-layer and chain aggregates of vn.answer, vn.later,
                      vn.later_max and the value norm itself (vn.vnorm)
    multihop          answer -> reasoning -> reasoning attention paths: hop.hop2.L03 per layer, hop.hop2_bins.r0a3
                      (reasoning hop in depth bin 0, answer hop in bin 3), hop.rollout, hop.rollout_last (+ _rel)
    local             greedy's exact local gain of deleting the token (JOINT: minus its own log-prob plus the
                      next token's log-prob change, `greedy.candidates.local_gains`) from the same forward:
                      local.skip_lp (log p(next | prefix without the token)), local.next_change, local.gain,
                      local.gain_z, local.gain_rank (within the chain, (rank + 0.5) / n: lowest = highest gain)
    loo               greedy's exact first step, n candidate scorings beyond the shared forward (JOINT;
                      `greedy.leave_one_out`): loo.gain (objective without the token minus the full one,
                      nats), loo.rest (loo.gain minus the local gain: the later tokens' change), loo.gain_z,
                      loo.gain_rank; about n^2/2 + n a LM tokens, cached apart from the other groups

The probe is appended after the answer, so causality keeps it out of every other column; rows are
only ever the chain's reasoning tokens. All values are finite float32.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .chains import Chain, ChainLike, as_chain_list
from .layout import Layout
from .lexical import CATEGORIES, FLAG_NAMES, categorize, token_flags, token_lines, word_ids
from .attention_flow import FLOW_BINS, FLOW_STATS, bin_pairs
from .observe import DEFAULT_PROBE, WINDOW, Observation, layers_at_depths, observe_batch

FEATURE_VERSION = 1  # bump whenever a column's definition changes: it invalidates feature caches
FEATURE_GROUPS = ("attention", "probe", "logits", "position", "lexical", "pooled_attention", "hidden", "value_norm",
                  "multihop", "local", "loo")
DEFAULT_GROUPS = ("attention", "probe", "logits", "position", "lexical")
ATTENTION_GROUPS = frozenset({"attention", "probe", "pooled_attention"})
FLOW_GROUPS = frozenset({"value_norm", "multihop"})  # need observe(..., flow=True) (predictor.attention_flow)
# groups whose columns mean the same for every LM (no per-layer, per-head or hidden-size columns):
# a predictor trained on only these can score with another LM (`RankPredictor.load("universal", lm=...)`)
LM_AGNOSTIC_GROUPS = frozenset({"pooled_attention", "logits", "position", "lexical", "local", "loo"})
# groups that run LM passes beyond the shared forward: `FeatureCache` stores them apart from the rest
SEARCH_GROUPS = frozenset({"loo"})
ATTN_HEAD_STATS = ("answer_mean", "later_mean", "later_max", "last")
POOLED_STATS = ("answer_mean", "later_mean", "later_max", "last", "probe_mean")
_CLIP = 1e6
_EPS = 1e-12


@dataclass(frozen=True)
class FeatureSpec:
    """Which feature columns to compute; its fingerprint keys feature caches and trained predictors."""

    groups: tuple[str, ...] = DEFAULT_GROUPS
    per_head: bool = True  # per-(layer, head) columns; False keeps only the aggregates
    extra_stats: tuple[str, ...] = ("received_sum", "window_mean")  # aggregate-only attention stats
    pooled_bins: int = 4  # depth bins of the pooled_attention group
    pooled_quantiles: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    hidden_depths: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)  # relative depths of the hidden group's layers
    probe: str = DEFAULT_PROBE
    window: int = WINDOW
    version: int = FEATURE_VERSION

    def __post_init__(self) -> None:
        groups = (self.groups,) if isinstance(self.groups, str) else tuple(self.groups)
        bad = [g for g in groups if g not in FEATURE_GROUPS]
        if bad or not groups:
            raise ValueError(f"unknown feature groups {bad or '(none given)'}; choose from {', '.join(FEATURE_GROUPS)}")
        object.__setattr__(self, "groups", tuple(g for g in FEATURE_GROUPS if g in groups))  # canonical order
        object.__setattr__(self, "extra_stats", tuple(self.extra_stats))
        object.__setattr__(self, "pooled_quantiles", tuple(float(q) for q in self.pooled_quantiles))
        object.__setattr__(self, "hidden_depths", tuple(float(d) for d in self.hidden_depths))
        if "hidden" in groups and not all(0.0 < d <= 1.0 for d in self.hidden_depths):
            raise ValueError(f"hidden_depths must be in (0, 1], got {self.hidden_depths}")
        if self.pooled_bins < 1 or not all(0.0 <= q <= 1.0 for q in self.pooled_quantiles):
            raise ValueError("pooled_bins must be >= 1 and pooled_quantiles in [0, 1]")

    @property
    def needs_attention(self) -> bool:
        return bool(ATTENTION_GROUPS & set(self.groups))

    @property
    def needs_flow(self) -> bool:
        return bool(FLOW_GROUPS & set(self.groups))

    def observe_kwargs(self) -> dict:
        """The keyword arguments of `observe_batch` (besides attention) that this spec's pass needs."""
        kw: dict = {"probe": self.probe if self.needs_probe else None, "window": self.window}
        if "hidden" in self.groups:
            kw["hidden_depths"] = self.hidden_depths
        if self.needs_flow:
            kw["flow"] = True
        return kw

    @property
    def needs_probe(self) -> bool:
        return "probe" in self.groups or "pooled_attention" in self.groups

    def hidden_layers(self, num_layers: int) -> tuple[int, ...]:
        """1-based decoder layers of the hidden group for an LM of this depth (none without the group)."""
        return layers_at_depths(num_layers, self.hidden_depths) if "hidden" in self.groups else ()

    @property
    def lm_agnostic(self) -> bool:
        """True when every group is in LM_AGNOSTIC_GROUPS (the columns do not depend on the LM's shape)."""
        return set(self.groups) <= LM_AGNOSTIC_GROUPS

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown FeatureSpec fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def fingerprint(self) -> str:
        """12 hex chars; changes with any field, including FEATURE_VERSION."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class FeatureTable:
    """values: float32 [n, F], one row per reasoning token; names/groups: [F] column names and groups."""

    names: list[str]
    groups: list[str]
    values: np.ndarray
    chain_id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names) or len(self.groups) != len(self.names):
            raise ValueError(f"values {self.values.shape} do not match {len(self.names)} names/groups")

    @property
    def n(self) -> int:
        return self.values.shape[0]

    def __len__(self) -> int:
        return self.n

    def select(self, groups: Iterable[str]) -> "FeatureTable":
        """Only the columns of these groups (order kept)."""
        want = {groups} if isinstance(groups, str) else set(groups)
        bad = want - set(FEATURE_GROUPS)
        if bad:
            raise ValueError(f"unknown feature groups {sorted(bad)}; choose from {', '.join(FEATURE_GROUPS)}")
        idx = [i for i, g in enumerate(self.groups) if g in want]
        return FeatureTable([self.names[i] for i in idx], [self.groups[i] for i in idx],
                            self.values[:, idx], self.chain_id)

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]

    def hstack(self, other: "FeatureTable") -> "FeatureTable":
        """This table's columns followed by `other`'s (same rows; ValueError otherwise)."""
        if other.n != self.n:
            raise ValueError(f"tables of {self.n} and {other.n} rows cannot be joined")
        return FeatureTable(self.names + other.names, self.groups + other.groups,
                            np.hstack([self.values, other.values]), self.chain_id)


class _Builder:
    """Collects named column blocks of shape [n, k] per group."""

    def __init__(self, n: int):
        self.n, self.names, self.groups, self.blocks = n, [], [], []

    def add(self, group: str, names: Sequence[str], block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float64).reshape(self.n, len(names))
        self.names += list(names)
        self.groups += [group] * len(names)
        self.blocks.append(block)

    def add1(self, group: str, name: str, col) -> None:
        self.add(group, [name], np.asarray(col, dtype=np.float64)[:, None])

    def table(self, chain_id: str) -> FeatureTable:
        vals = np.concatenate(self.blocks, axis=1) if self.blocks else np.zeros((self.n, 0))
        vals = np.clip(np.nan_to_num(vals, nan=0.0, posinf=_CLIP, neginf=-_CLIP), -_CLIP, _CLIP)
        return FeatureTable(self.names, self.groups, vals.astype(np.float32), chain_id)


def _rel(x: np.ndarray) -> np.ndarray:
    """x divided by its mean over the chain's tokens (last axis): comparable across chain lengths."""
    return x / (x.mean(-1, keepdims=True) + _EPS)


def _attention_block(b: _Builder, group: str, prefix: str, a: np.ndarray, per_head: bool,
                     per_layer_max: bool = True) -> np.ndarray:
    """Columns of one stat a [L, H, n]; returns the chain-level mean over layers and heads [n]."""
    L, H, n = a.shape
    if per_head:
        b.add(group, [f"{prefix}.L{l:02d}.H{h:02d}" for l in range(L) for h in range(H)], a.reshape(L * H, n).T)
    b.add(group, [f"{prefix}.layer_mean.L{l:02d}" for l in range(L)], a.mean(1).T)
    if per_layer_max:
        b.add(group, [f"{prefix}.head_max.L{l:02d}" for l in range(L)], a.max(1).T)
    all_mean = a.mean((0, 1))
    b.add1(group, f"{prefix}.all_mean", all_mean)
    b.add1(group, f"{prefix}.all_max", a.max((0, 1)))
    b.add1(group, f"{prefix}.all_mean_rel", _rel(all_mean))
    return all_mean


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """x[i - k] (0 outside the chain): k=1 gives the previous token's value, k=-1 the next one's."""
    out = np.zeros_like(x)
    if k > 0:
        out[k:] = x[:-k]
    else:
        out[:k] = x[-k:]
    return out


def _depth_bins(L: int, bins: int) -> list[list[int]]:
    """Layers of each relative-depth bin; a bin without layers borrows the nearest one (L < bins)."""
    out = []
    for d in range(bins):
        ls = [l for l in range(L) if l * bins // L == d]
        out.append(ls or [min(L - 1, int((d + 0.5) * L / bins))])
    return out


def features_from_observation(obs: Observation, spec: FeatureSpec | None = None) -> FeatureTable:
    """Feature table [n, F] of an observation (see the module docstring for the columns)."""
    spec = spec or FeatureSpec()
    n = obs.n
    if spec.needs_attention and not obs.attn:
        raise ValueError(f"feature groups {sorted(ATTENTION_GROUPS & set(spec.groups))} need an observation "
                         "with attention (observe(..., attention=True))")
    b = _Builder(n)
    steps = np.asarray(token_lines(obs.tokens), dtype=np.int64)
    if "attention" in spec.groups:
        for stat in ATTN_HEAD_STATS:
            _attention_block(b, "attention", f"attn.{stat}", obs.attn[stat], spec.per_head)
        for stat in spec.extra_stats:
            _attention_block(b, "attention", f"attn.{stat}", obs.attn[stat], False, per_layer_max=False)
    if "probe" in spec.groups:
        pm = _attention_block(b, "probe", "probe", obs.attn["probe_mean"], spec.per_head)
        step_mean = np.bincount(steps, weights=pm) / np.maximum(np.bincount(steps), 1)
        b.add1("probe", "probe.step_mean", step_mean[steps])  # Think Clearly scores whole steps
    if "logits" in spec.groups:
        s, e = obs.surprisal.astype(np.float64), obs.entropy.astype(np.float64)
        b.add1("logits", "logit.surprisal", s)
        b.add1("logits", "logit.entropy", e)
        b.add1("logits", "logit.log_rank", np.log(np.maximum(obs.token_rank, 1)))
        b.add1("logits", "logit.is_top1", obs.token_rank <= 1)
        b.add1("logits", "logit.surprisal_minus_entropy", s - e)
        b.add1("logits", "logit.surprisal_z", (s - s.mean()) / (s.std() + 1e-6))
        for name, x in (("surprisal", s), ("entropy", e)):
            b.add1("logits", f"logit.{name}_prev", _shift(x, 1))
            b.add1("logits", f"logit.{name}_next", _shift(x, -1))
    if "local" in spec.groups:
        lp, skip, nxt = obs.local_terms()
        gain = obs.local_gains()
        b.add1("local", "local.skip_lp", skip)
        b.add1("local", "local.next_change", skip - nxt)
        b.add1("local", "local.gain", gain)
        b.add1("local", "local.gain_z", (gain - gain.mean()) / (gain.std() + 1e-6))
        b.add1("local", "local.gain_rank", (np.argsort(np.argsort(-gain, kind="stable")) + 0.5) / n)
    if "position" in spec.groups:
        i = np.arange(n, dtype=np.float64)
        n_steps = steps[-1] + 1
        step_len = np.bincount(steps)
        step_first = np.concatenate([[0], np.cumsum(step_len)[:-1]])
        in_step = i - step_first[steps]
        b.add1("position", "pos.frac", i / max(n - 1, 1))
        b.add1("position", "pos.to_answer", n - i)  # tokens from here to the answer, itself included
        b.add1("position", "pos.log_index", np.log1p(i))
        b.add1("position", "pos.log_to_answer", np.log(n - i))
        b.add1("position", "pos.log_n", np.full(n, np.log(n)))
        b.add1("position", "pos.step_frac", steps / max(n_steps - 1, 1))
        b.add1("position", "pos.in_step_frac", in_step / np.maximum(step_len[steps] - 1, 1))
        b.add1("position", "pos.step_start", in_step == 0)
        b.add1("position", "pos.step_end", in_step == step_len[steps] - 1)
    if "lexical" in spec.groups:
        flags = [token_flags(t) for t in obs.tokens]
        b.add("lexical", [f"lex.{f}" for f in FLAG_NAMES], [[fl[f] for f in FLAG_NAMES] for fl in flags])
        b.add1("lexical", "lex.n_chars", [len(t.strip()) for t in obs.tokens])
        wid, words = word_ids(obs.tokens)
        qwords = {w.lower() for w in re.findall(r"[A-Za-z0-9]+", obs.chain.question)}
        seen: dict[str, int] = {}
        in_q, repeats, first_of_word = [], [], []
        for k, w in enumerate(wid):
            word = words[w] if w >= 0 else ""
            in_q.append(bool(word) and word in qwords)
            new = w >= 0 and (k == 0 or wid[k - 1] != w)
            first_of_word.append(new)
            repeats.append(seen.get(word, 0) if word else 0)
            if new and word:
                seen[word] = seen.get(word, 0) + 1
        b.add1("lexical", "lex.in_question", in_q)
        b.add1("lexical", "lex.word_repeat", np.log1p(repeats))
        b.add1("lexical", "lex.word_start", first_of_word)
        cats = categorize(obs.tokens, obs.chain.question)
        b.add("lexical", [f"lex.cat.{c}" for c in CATEGORIES], [[c == k for k in CATEGORIES] for c in cats])
    if "pooled_attention" in spec.groups:
        qs = spec.pooled_quantiles
        for stat in POOLED_STATS:
            a = _rel(obs.attn[stat].astype(np.float64))  # [L, H, n], scale-free per head
            for d, ls in enumerate(_depth_bins(a.shape[0], spec.pooled_bins)):
                flat = a[ls].reshape(-1, n)
                b.add("pooled_attention", [f"pooled.{stat}.d{d}of{spec.pooled_bins}.q{round(q * 100):03d}" for q in qs],
                      np.quantile(flat, qs, axis=0).T)
    if spec.needs_flow and not obs.flow:
        raise ValueError(f"feature groups {sorted(FLOW_GROUPS & set(spec.groups))} need an observation "
                         "with flow statistics (observe(..., flow=True))")
    if "value_norm" in spec.groups:
        _attention_block(b, "value_norm", "vn.answer", obs.flow["vn_answer"].astype(np.float64), spec.per_head)
        for stat, name in (("vn_later", "later"), ("vn_later_max", "later_max"), ("vnorm", "vnorm")):
            _attention_block(b, "value_norm", f"vn.{name}", obs.flow[stat].astype(np.float64), False)
    if "multihop" in spec.groups:
        hop2 = obs.flow["hop2"].astype(np.float64)
        b.add("multihop", [f"hop.hop2.L{l:02d}" for l in range(len(hop2))], hop2.T)
        b.add1("multihop", "hop.hop2.mean", hop2.mean(0))
        b.add1("multihop", "hop.hop2.mean_rel", _rel(hop2.mean(0)))
        b.add("multihop", [f"hop.hop2_bins.r{b1}a{b2}of{FLOW_BINS}" for b1, b2 in bin_pairs()],
              obs.flow["hop2_bins"].astype(np.float64).T)
        for stat in ("rollout", "rollout_last"):
            x = obs.flow[stat][0].astype(np.float64)
            b.add1("multihop", f"hop.{stat}", x)
            b.add1("multihop", f"hop.{stat}_rel", _rel(x))
    if "hidden" in spec.groups:
        if not obs.hidden:
            raise ValueError("the hidden group needs an observation with hidden states "
                             "(observe(..., hidden_layers=spec.hidden_layers(num_layers)))")
        for l, hs in sorted(obs.hidden.items()):
            b.add("hidden", [f"hid.L{l:02d}.d{j:03d}" for j in range(hs.shape[1])], hs)
    # last, so that a table of the other groups followed by a loo-only table is this table (FeatureCache)
    if "loo" in spec.groups:
        local = obs.local_gains()
        gain = _loo_gains(obs)
        b.add1("loo", "loo.gain", gain)
        b.add1("loo", "loo.rest", gain - local)
        b.add1("loo", "loo.gain_z", (gain - gain.mean()) / (gain.std() + 1e-6))
        b.add1("loo", "loo.gain_rank", (np.argsort(np.argsort(-gain, kind="stable")) + 0.5) / n)
    return b.table(obs.chain.id)


def _loo_gains(obs: Observation) -> np.ndarray:
    """float64 [n]: the exact leave-one-out gains of the observed state (JOINT): `obs.loo_gain` when
    given, else computed with the observation's LM (ValueError without one)."""
    from .greedy.leave_one_out import leave_one_out_gains

    if len(obs.loo_gain) == obs.n:
        return obs.loo_gain.astype(np.float64)
    if obs.lm is None:
        raise ValueError("the loo feature group needs the LM: observe the chain with predictor.observe.observe(lm, ...)")
    return leave_one_out_gains(obs.lm, obs.layout, "joint")[0]


def feature_names(spec: FeatureSpec | None, num_layers: int, num_heads: int,
                  hidden_size: int = 0) -> tuple[list[str], list[str]]:
    """(names, groups) of the columns for an LM of this shape, without running it."""
    spec = spec or FeatureSpec()
    n = 2
    obs = Observation(
        chain=Chain("q", "a b", "x", "names"), layout=Layout([0], [0, 0], [0]),
        logprob=np.zeros(n, np.float32), entropy=np.zeros(n, np.float32), token_rank=np.ones(n, np.float32),
        skip_logprob=np.zeros(n, np.float32), next_logprob=np.zeros(n, np.float32), loo_gain=np.zeros(n),
        attn={k: np.zeros((num_layers, num_heads, n), np.float32)
              for k in set(ATTN_HEAD_STATS) | set(POOLED_STATS) | set(spec.extra_stats)},
        tokens=["a", " b"],
        hidden={l: np.zeros((n, hidden_size), np.float32) for l in spec.hidden_layers(num_layers)},
        flow={**{k: np.zeros((num_layers, num_heads, n), np.float32) for k in FLOW_STATS},
              "hop2": np.zeros((num_layers, n), np.float32), "hop2_bins": np.zeros((len(bin_pairs()), n), np.float32),
              "rollout": np.zeros((1, n), np.float32), "rollout_last": np.zeros((1, n), np.float32)},
    )
    t = features_from_observation(obs, spec)
    return t.names, t.groups


def observe_for(lm, chain: ChainLike, spec: FeatureSpec, kept: list[int] | None = None) -> Observation:
    """The one forward pass that `spec` needs (attention and probe only when used)."""
    return observe_for_many(lm, [chain], spec, [kept])[0]


def observe_for_many(lm, chains: list[ChainLike], spec: FeatureSpec,
                     kept: list[list[int] | None] | None = None) -> list[Observation]:
    """`observe_for` of several chains, several per forward pass (kept: per chain, or None)."""
    return observe_batch(lm, chains, attention=spec.needs_attention, kept=kept, **spec.observe_kwargs())


def extract_features(lm, chain: ChainLike | list[ChainLike], spec: FeatureSpec | None = None,
                     kept: list[int] | None = None) -> FeatureTable | list[FeatureTable]:
    """Feature table of one chain (or a list of tables for a list of chains, several chains per
    forward pass; the same tables as one at a time).

    kept: for a single chain, featurize only these reasoning token indices (a partially pruned state).
    """
    spec = spec or FeatureSpec()
    chains, single = as_chain_list(chain)
    if kept is not None and not single:
        raise ValueError("kept applies to a single chain (extract_features_many takes one per chain)")
    tables = extract_features_many(lm, chains, spec, None if kept is None else [kept])
    return tables[0] if single else tables


def extract_features_many(lm, chains: list[ChainLike], spec: FeatureSpec | None = None,
                          kept: list[list[int] | None] | None = None) -> list[FeatureTable]:
    """Feature tables of several chains (kept: per chain, the reasoning indices to featurize, or None)."""
    spec = spec or FeatureSpec()
    return [features_from_observation(o, spec) for o in observe_for_many(lm, chains, spec, kept)]
