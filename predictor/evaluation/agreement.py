"""Rank agreement of scorers with the greedy oracle: overall and broken down by chain length.

`score_chains` runs the shared observation pass once per chain and every scorer on it (timing
both); `agreement` and `agreement_by_length` work on plain rank arrays.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..metrics import bootstrap_ci, per_chain_spearman, summarize

LENGTH_EDGES = (0, 32, 64, 128, 256, 10**9)  # chain length bins (reasoning tokens): (lo, hi]


def agreement(preds: Mapping[str, Sequence[np.ndarray]], true: Sequence[np.ndarray],
              n_boot: int = 2000, seed: int = 0) -> dict[str, dict]:
    """Scorer name -> `summarize` of its ranks against the greedy ranks."""
    return {name: summarize(p, true, n_boot=n_boot, seed=seed) for name, p in preds.items()}


def length_bins(lengths: Sequence[int], edges: Sequence[int] = LENGTH_EDGES) -> list[tuple[str, np.ndarray]]:
    """Non-empty (label, chain indices) per length bin (lo, hi]."""
    n = np.asarray(lengths)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        idx = np.flatnonzero((n > lo) & (n <= hi))
        if len(idx):
            label = f"{lo + 1}-{hi}" if hi < 10**9 else f">{lo}"
            out.append((label, idx))
    return out


def agreement_by_length(preds: Mapping[str, Sequence[np.ndarray]], true: Sequence[np.ndarray],
                        edges: Sequence[int] = LENGTH_EDGES, n_boot: int = 1000,
                        seed: int = 0) -> list[dict]:
    """One row per non-empty length bin: chains, and each scorer's per-chain Spearman mean [lo, hi]."""
    rows = []
    for label, idx in length_bins([len(t) for t in true], edges):
        row = {"bin": label, "n_chains": int(len(idx)), "scorers": {}}
        for name, p in preds.items():
            rho = per_chain_spearman([p[i] for i in idx], [true[i] for i in idx])
            m, lo, hi = bootstrap_ci(rho, n_boot=n_boot, seed=seed)
            row["scorers"][name] = {"spearman_mean": m, "spearman_lo": lo, "spearman_hi": hi}
        rows.append(row)
    return rows


@dataclass
class ScoredChains:
    """Per-chain outputs of every scorer on a set of chains (ranks: 1 = pruned first)."""

    ids: list[str]
    ranks: dict[str, list[np.ndarray]] = field(default_factory=dict)
    score_seconds: dict[str, list[float]] = field(default_factory=dict)  # scorer time beyond the observation
    observe_seconds: list[float] = field(default_factory=list)  # one pass with attention (and probe) per chain
    observe_plain_seconds: list[float] = field(default_factory=list)  # one pass without attention (first chains)
    extra_passes: dict[str, list[int]] = field(default_factory=dict)

    def seconds_per_chain(self, name: str, needs_attention: bool) -> float:
        """Mean wall seconds per chain of one scorer: its observation pass plus its own scoring."""
        obs = self.observe_seconds if needs_attention or not self.observe_plain_seconds else self.observe_plain_seconds
        return float(np.mean(obs) + np.mean(self.score_seconds[name]))


def _observe_key(scorer) -> tuple:
    """The observation settings a scorer needs (defaults filled in, so equal settings share a pass)."""
    from ..observe import DEFAULT_PROBE, WINDOW

    kw = {"probe": DEFAULT_PROBE, "window": WINDOW, **dict(getattr(scorer, "observe_kwargs", {}) or {})}
    return tuple(sorted(kw.items()))


def score_chains(lm, chains: Sequence, scorers: Mapping[str, object], plain_timing_chains: int = 3,
                 progress=None) -> ScoredChains:
    """Observe every chain once and rank it with every scorer; time the observation and each scorer.

    `scorers`: name -> Scorer instance. Scorers that ask for the same observation settings
    (`observe_kwargs`, e.g. a learned predictor's probe text) share one pass, which carries attention
    when any of them needs it. On the first `plain_timing_chains` chains an attention-free pass is
    also timed, so that scorers without attention are charged for the cheaper pass.
    """
    from ..observe import observe

    groups: dict[tuple, list[str]] = {}
    for name, sc in scorers.items():
        groups.setdefault(_observe_key(sc), []).append(name)
    need_attn = {key: any(getattr(scorers[k], "needs_attention", False) for k in names)
                 for key, names in groups.items()}
    out = ScoredChains(ids=[], ranks={k: [] for k in scorers}, score_seconds={k: [] for k in scorers},
                       extra_passes={k: [] for k in scorers})
    it = progress(chains, desc="scorers") if progress else chains
    for i, chain in enumerate(it):
        out.ids.append(str(chain.id if hasattr(chain, "id") else chain.get("id", i)))
        first = True
        for key, names in groups.items():
            t0 = time.perf_counter()
            obs = observe(lm, chain, attention=need_attn[key], **dict(key))
            if first:  # the shared pass is charged once per chain
                out.observe_seconds.append(time.perf_counter() - t0)
                first = False
            for name in names:
                t0 = time.perf_counter()
                r = np.asarray(scorers[name].ranks(obs))
                out.score_seconds[name].append(time.perf_counter() - t0)
                out.ranks[name].append(r)
                out.extra_passes[name].append(int(scorers[name].extra_forward_passes(obs.n)))
        if i < plain_timing_chains:
            t0 = time.perf_counter()
            observe(lm, chain, attention=False, probe=None)
            out.observe_plain_seconds.append(time.perf_counter() - t0)
    return out
