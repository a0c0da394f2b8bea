"""Objective after deleting each kept reasoning token of one greedy state: the labeler's inner loop.

Deleting kept token j leaves prompt + kept[:j] unchanged, so for a state we
  1. run one forward over the kept reasoning + answer on top of the prompt's cached KV (computed once
     per chain), which gives the log-probs of every prefix and the KV of every prefix;
  2. for every candidate j, recompute only the suffix kept[j+1:] + answer, attending to the first
     p + j cached positions (the other cached positions are masked out) with positions shifted by one.
Candidates are batched by a token budget. Rows layout (here; the CUDA default): each candidate is a
padded row with its own prefix copy (bounded by a KV-memory budget). Packed layout
(`suffix_reuse`, the CPU default): a block's suffixes go back to back into one sequence over one
shared prefix, each candidate attending to its prefix and its own inputs only. Log-probs are
computed from hidden states only at the positions the objective needs. The scores equal those of
full forwards of each candidate sequence (`reference`) up to float round-off.
"""
from __future__ import annotations

import numpy as np
import torch

from ..kv_cache import cache_kwargs, layer_kv, output_cache, prefix_cache
from ..layout import Layout
from ..lm import LM, base_and_head
from ..objective import upcast


def default_batch_tokens(device: torch.device) -> int:
    """Candidate tokens per batched forward: bounded by free memory on CUDA, fixed on CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(max(2048, min(65536, free // (2 * 1024 * 1024))))
    return 512


def kv_bytes_per_token(model) -> int:
    """Bytes of KV cache one token takes across all layers (keys and values)."""
    cfg = model.config.get_text_config()
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    size = torch.finfo(next(model.parameters()).dtype).bits // 8
    return 2 * cfg.num_hidden_layers * kv_heads * head_dim * size


def default_kv_tokens(model, device: torch.device) -> int:
    """Cached tokens a candidate block may hold in total (each row holds its own copy of the prefix):
    a quarter of free memory on CUDA, 2 GiB on CPU."""
    free = torch.cuda.mem_get_info(device)[0] // 4 if device.type == "cuda" else 2 << 30
    return max(1, int(free // kv_bytes_per_token(model)))


def needs_reference(lm: LM, lay: Layout) -> bool:
    """True for sliding-window models on sequences longer than the window: their caches keep only the
    window and their masks count cache slots, which the shared-prefix trick relies on, so the exact
    (slow) reference search is used instead."""
    window = getattr(lm.model.config.get_text_config(), "sliding_window", None)
    return bool(window) and len(lay.prompt_ids) + lay.n + len(lay.answer_ids) > int(window)


def head_logprobs(head: torch.nn.Module, cap: float | None, h: torch.Tensor) -> torch.Tensor:
    """Next-token log-probs [N, V] from final hidden states h [N, d]: the LM head, half precision upcast,
    the final-logit soft cap (Gemma's; None: none), then log_softmax."""
    logits = upcast(head(h))
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.log_softmax(logits, dim=-1)


def local_gains(seq: list[int], m: int, tok_lp: torch.Tensor, rows: torch.Tensor, joint: bool) -> np.ndarray:
    """Per kept position j of a state (seq = m kept reasoning tokens + the answer), the exact part of
    deleting it that needs no forward pass [m] (float64): minus its own log-prob term (joint) plus the
    change of the next token's log-prob, which the unchanged prefix predicts. tok_lp [>= m+1]: log p of
    seq[t] in the state; rows [>= m, V]: rows[j] the next-token log-probs after prompt + seq[:j]."""
    nxt = torch.tensor(seq[1: m + 1], device=rows.device)
    first = rows[:m].gather(1, nxt[:, None])[:, 0].double() - tok_lp[1: m + 1].double()
    if joint:
        return (first - tok_lp[:m].double()).cpu().numpy()
    out = torch.zeros(m, dtype=torch.float64, device=rows.device)
    out[m - 1] = first[m - 1]  # only the last token's next target is an answer token
    return out.cpu().numpy()


def tie_equal_neighbours(seq: list[int], m: int, scores: np.ndarray, exact: list[bool] | None = None) -> None:
    """Deleting either of two equal adjacent tokens leaves the same sequence: an exact tie that
    round-off must not break (the rule gives it to the lower index). Edits `scores` [m] in place.

    exact: which scores are exact (default all); an upper bound is neither copied nor overwritten."""
    for j in range(1, m):
        if seq[j] == seq[j - 1] and (exact is None or (exact[j] and exact[j - 1])):
            scores[j] = scores[j - 1]


class CandidateScorer:
    """Per-chain state: prompt KV, helpers that score sequences sharing cached prefixes, and the padded
    rows layout (the CUDA default; `suffix_reuse.SuffixReuseScorer` is the packed one).

    `candidates(kept)` scores one state from scratch; `advance(j)` tells the scorer that kept[j] was
    deleted (a no-op here; `SuffixReuseScorer` keeps what the next state can reuse)."""

    def __init__(self, lm: LM, lay: Layout, objective: str, batch_tokens: int | None):
        self.model = lm.model
        self.base, self.head, self.cap = base_and_head(lm.model)
        self.dev = lm.device
        self.lay = lay
        self.joint = objective == "joint"
        self.budget = batch_tokens or default_batch_tokens(self.dev)
        self.kv_budget = default_kv_tokens(lm.model, self.dev)
        self._last_step = None  # (kept, step output) of the last `step`: `candidates` of that state reuses it
        p = len(lay.prompt_ids)
        out = self.base(input_ids=torch.tensor([lay.prompt_ids], device=self.dev), use_cache=True)
        self.prompt_kv = layer_kv(output_cache(out))
        self.prompt_last_lp = self._logprobs(out.last_hidden_state[0, -1:])[0]  # [V]
        self.p = p
        self.tokens = p  # tokens run through the LM, for throughput reporting

    def _logprobs(self, h: torch.Tensor) -> torch.Tensor:
        return head_logprobs(self.head, self.cap, h)

    def _target_lp(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(targets) from hidden states h [N, d] in chunks (never N x V at once)."""
        out = []
        for s in range(0, h.shape[0], 512):
            # log_softmax + gather: one fused pass over the logits (logsumexp takes several)
            out.append(self._logprobs(h[s:s + 512]).gather(1, targets[s:s + 512, None])[:, 0])
        return torch.cat(out) if out else h.new_zeros(0)

    @torch.no_grad()
    def step(self, kept: list[int]):
        """Forward the current sequence: returns (objective, token log-probs [m+a], prefix KV, prefix lp rows).

        rows[j] is the next-token distribution after prompt + kept[:j] (j = 0..m)."""
        lay, p = self.lay, self.p
        seq = [lay.reasoning_ids[i] for i in kept] + lay.answer_ids
        m = len(kept)
        x = torch.tensor([seq[:-1]], device=self.dev)
        pos = torch.arange(p, p + len(seq) - 1, device=self.dev)[None]
        if x.shape[1]:
            out = self.base(input_ids=x, position_ids=pos, use_cache=True,
                            **cache_kwargs(self.base, prefix_cache(self.prompt_kv, p, 1)))
            h = out.last_hidden_state[0]
            kv = layer_kv(output_cache(out))
            rows = torch.cat([self.prompt_last_lp[None], self._logprobs(h[:m])]) if m else self.prompt_last_lp[None]
            tgt = torch.tensor(seq[1:], device=self.dev)
            tok_lp = torch.cat([self.prompt_last_lp[seq[0]][None], self._target_lp(h, tgt)])
        else:
            kv, rows = self.prompt_kv, self.prompt_last_lp[None]
            tok_lp = self.prompt_last_lp[seq[0]][None]
        self.tokens += len(seq) - 1
        obj = tok_lp.double().sum() if self.joint else tok_lp[m:].double().sum()
        result = float(obj), tok_lp.double(), kv, rows
        self._last_step = (tuple(kept), result)
        return result

    @torch.no_grad()
    def candidates(self, kept: list[int]) -> np.ndarray:
        """Objective after deleting each kept token (scores[j] for deleting kept[j]), float64 [m]."""
        lay, p, m = self.lay, self.p, len(kept)
        last = self._last_step
        _, tok_lp, kv, rows = last[1] if last is not None and last[0] == tuple(kept) else self.step(kept)
        seq = [lay.reasoning_ids[i] for i in kept] + lay.answer_ids
        a = len(lay.answer_ids)
        # prefix part: tokens before the deleted one keep their log-probs (joint only)
        prefix = torch.cat([tok_lp.new_zeros(1), torch.cumsum(tok_lp[:m], 0)])
        total = self._first_terms(seq, m, 0, m, prefix, rows) if m else tok_lp.new_zeros(0)
        total = total + self.suffix_sums(seq, m, kv, list(range(m)), [max(0, m - j - 2 + a) for j in range(m)])
        scores = total.cpu().numpy()
        tie_equal_neighbours(seq, m, scores)
        return scores

    def advance(self, j: int) -> None:
        """kept[j] of the last scored state was deleted; nothing is kept between states here."""

    def _first_terms(self, seq, m, j0, j1, prefix, rows) -> torch.Tensor:
        """Per candidate j in [j0, j1): the prefix log-prob (joint) + log p(first suffix token | prefix)."""
        js = torch.arange(j0, j1, device=self.dev)
        nxt = torch.tensor([seq[j + 1] for j in range(j0, j1)], device=self.dev)
        first = rows[js].gather(1, nxt[:, None])[:, 0].double()
        if not self.joint:
            first = torch.where(js == m - 1, first, torch.zeros_like(first))
        return (prefix[js] if self.joint else 0) + first

    def first_used(self, m: int, j: int) -> int:
        """The first suffix input of candidate j (of m kept) whose target the objective scores: all (joint),
        else those predicting answer tokens (input t of candidate j predicts seq[j+2+t])."""
        return 0 if self.joint else max(0, m - j - 2)

    def suffix_sums(self, seq: list[int], m: int, kv, cands: list[int], lens: list[int]) -> torch.Tensor:
        """Per candidate cands[i] (ascending): the sum of the scored log-probs [len(cands)] (float64) of its
        first lens[i] suffix inputs, seq[j+1 : j+1+lens[i]] predicting seq[j+2 : j+2+lens[i]] after the
        prefix prompt + seq[:j] (kv: per layer (keys, values) of at least p + max(cands) positions).
        Padded rows here, each holding its own copy of the prefix; blocks of consecutive candidates sized
        so that rows x longest input <= the token budget and rows x prefix <= the KV budget."""
        out = torch.zeros(len(cands), dtype=torch.float64, device=self.dev)
        i = 0
        while i < len(cands):
            i2 = i + 1
            while (i2 < len(cands) and (i2 - i + 1) * max(1, max(lens[i:i2 + 1])) <= self.budget
                   and (i2 - i + 1) * (self.p + cands[i2] + max(lens[i:i2 + 1])) <= self.kv_budget):
                i2 += 1
            out[i:i2] = self._row_sums(seq, m, kv, cands[i:i2], lens[i:i2])
            i = i2
        return out

    def _row_sums(self, seq, m, kv, cands: list[int], lens: list[int]) -> torch.Tensor:
        """`suffix_sums` of one block, as one padded row per candidate."""
        p, dev, B = self.p, self.dev, len(cands)
        L = max(lens)
        if L <= 0:
            return torch.zeros(B, dtype=torch.float64, device=dev)
        cache_len = p + cands[-1]  # longest prefix in the block
        ids = torch.zeros(B, L, dtype=torch.long, device=dev)
        tgt = torch.zeros(B, L, dtype=torch.long, device=dev)
        use = torch.zeros(B, L, dtype=torch.bool, device=dev)
        mask = torch.zeros(B, cache_len + L, dtype=torch.long, device=dev)
        for b, (j, ln) in enumerate(zip(cands, lens)):
            if ln > 0:
                ids[b, :ln] = torch.tensor(seq[j + 1:j + 1 + ln])
                tgt[b, :ln] = torch.tensor(seq[j + 2:j + 2 + ln])
                use[b, self.first_used(m, j):ln] = True
            mask[b, : p + j] = 1
            mask[b, cache_len: cache_len + max(0, ln)] = 1
        pos = p + torch.tensor(cands, device=dev)[:, None] + torch.arange(L, device=dev)[None]
        out = self.base(input_ids=ids, position_ids=pos, attention_mask=mask, use_cache=True,
                        **cache_kwargs(self.base, prefix_cache(kv, cache_len, B)))
        self.tokens += sum(max(0, ln) for ln in lens)
        lp = self._target_lp(out.last_hidden_state[use], tgt[use]).double()
        return torch.zeros(B, dtype=torch.float64, device=dev).index_add_(0, use.nonzero()[:, 0], lp)
