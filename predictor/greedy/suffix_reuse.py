"""Packed candidate scoring that carries each candidate's suffix from one greedy step to the next and
stops scoring candidates that can no longer win (CPU default).

Packed layout: a block's candidate suffixes go back to back into one sequence over one shared prefix
(batch 1: no per-row prefix copies, no padding), in which each candidate sees its prefix and its own
earlier inputs only: through `packed_attention` (each chunk of candidates attends to its own keys), or,
for models that attention cannot serve (a logit soft cap, ...), through a 4D mask over a cache of the
prefix and the block's scored inputs. With reuse=False and bound=False every state is scored from
scratch this way.

Suffix reuse. After greedy deletes kept[b], candidate j < b of the next state is the previous state's
candidate j minus the token kept[b]: its suffix inputs kept[j+1:b] sit at the same positions after the
same prefix, so their KV, hidden states and log-probs are already known. Only the later inputs are
run, on top of the shared prefix cache plus each candidate's reused KV; the one reused input whose
target changed (kept[b-1] now predicts kept[b+1]) is rescored from its stored hidden state. The
deleted candidate's own suffix becomes the next state's sequence, so no state forward is run after
the first.

Bound (branch and bound over the candidates of one step). A candidate's score is its prefix terms plus
a sum of suffix log-probs, each <= 0, so the terms known so far bound it from above. Each candidate's
suffix log-probs are guessed: the previous step's log-probs of the same inputs where that candidate
was scored (same deletion, one context token fewer), else the current sequence's own log-probs of the
same targets. The step first completes the `guesses` candidates whose guessed complete scores are
highest and advances each other candidate, in waves, by as many inputs (at least `wave`) as its guess
says it needs to fall below the best complete score. After each wave, a candidate whose upper bound
falls below the best complete score by more than `margin` is dropped: it cannot be the argmax, so the
deletion order is the one full scoring gives; the guess only decides how much work each wave does.
The scores returned for dropped candidates are those upper bounds (below the best); the best score is
exact. Partly scored suffixes are still reused at the next step. Token counts are in
docs/benchmarks.md ("Short chains").
Tests compare orders and best scores with `reference` and the fresh scorer.

Memory: every candidate's suffix KV slot is held for one step (about n^2/2 tokens of KV for n
reasoning tokens; the previous step's and the current one's while a step is scored); when one step's
would exceed `store_bytes` (default 2 GiB) the step is scored in one pass without storing (no bound,
no reuse at the next step).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..kv_cache import cache_from_kv, cache_kwargs, layer_kv, output_cache
from ..layout import Layout
from ..lm import LM
from .candidates import CandidateScorer, kv_bytes_per_token, tie_equal_neighbours
from .packed_attention import PackedAttentionUnsupported, active, build_block, packed_attention, supported


@dataclass
class _State:
    """The current sequence: kept ids, KV of prompt + inputs (per layer [1, kvh, p+m+a-1, hd]), token
    log-probs [m+a] (float64) and next-token log-prob rows after each prefix [m+1, V]."""

    kept: tuple[int, ...]
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    tok_lp: torch.Tensor
    rows: torch.Tensor


@dataclass
class _Suffixes:
    """Every candidate's suffix slot of one state, back to back: per layer KV [kvh, S, hd], final hidden
    states [S, d], raw target log-probs [S] (float64). Candidate j owns off[j]:off[j]+length[j], of
    which the first done[j] inputs are scored."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    h: torch.Tensor
    lp: torch.Tensor
    off: list[int]
    length: list[int]
    done: list[int]
    first: torch.Tensor  # raw log p(first suffix token | prefix) per candidate [m] (float64)


class SuffixReuseScorer(CandidateScorer):
    """Packed candidate scoring with suffix reuse and the bound (see module doc). reuse=False scores
    every state from scratch; bound=False scores every candidate completely; store_bytes=0 turns both off.
    """

    def __init__(self, lm: LM, lay: Layout, objective: str, batch_tokens: int | None,
                 store_bytes: int | None = None, reuse: bool = True, bound: bool = True,
                 wave: int = 1, guesses: int = 2, margin: float = 1e-4,
                 chunk_keys: int = 64):
        super().__init__(lm, lay, objective, batch_tokens)
        self.d = lm.model.config.get_text_config().hidden_size
        self.bytes_per_stored = kv_bytes_per_token(lm.model) + 4 * self.d + 8
        self.store_bytes = 0 if not (reuse or bound) else (2 << 30) if store_bytes is None else int(store_bytes)
        self.reuse, self.bound = reuse, bound
        self.wave = max(1, int(wave))
        self.guesses, self.margin = max(1, int(guesses)), float(margin)
        self.packed_attention = supported(lm.model)
        self.chunk_keys = chunk_keys
        cfg = lm.model.config.get_text_config()
        self.groups = cfg.num_attention_heads // getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)
        self.state: _State | None = None
        self.suffixes: _Suffixes | None = None  # of the last scored state
        self.deleted: int | None = None  # index (in the last scored state) of the token deleted since

    @torch.no_grad()
    def step(self, kept: list[int]):
        obj, tok_lp, kv, rows = super().step(kept)
        self.state, self.suffixes, self.deleted = _State(tuple(kept), kv, tok_lp, rows), None, None
        return obj, tok_lp, kv, rows

    @torch.no_grad()
    def candidates(self, kept: list[int]) -> np.ndarray:
        """Objective after deleting each kept token, float64 [m]. With the bound on, a candidate dropped
        before it was scored completely gets an upper bound instead, below the best score by > `margin`;
        the best score (and every score of a complete candidate) is exact."""
        if self.state is None or self.state.kept != tuple(kept):
            self.step(kept)
        st, lay, dev = self.state, self.lay, self.dev
        m, a = len(kept), len(lay.answer_ids)
        seq = [lay.reasoning_ids[i] for i in kept] + lay.answer_ids
        lens = [max(0, m - j - 2 + a) for j in range(m)]  # suffix inputs (the last token predicts nothing)
        off = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(int).tolist() if m else []
        keep = self.store_bytes > 0 and sum(lens) * self.bytes_per_stored <= self.store_bytes
        old, b = (self.suffixes, self.deleted) if self.deleted is not None and self.reuse else (None, m + 1)
        if not keep:
            old = None
        reuse = [min(b - j - 1, lens[j], old.done[j]) if old is not None and a > 0 and j < b else 0
                 for j in range(m)]
        # input t of candidate j is scored iff it predicts an answer token (t >= m-j-2) or the objective is joint
        first_used = [self.first_used(m, j) for j in range(m)]

        js = torch.arange(m, device=dev)
        nxt = torch.tensor(seq[1:m + 1], device=dev)
        first = st.rows[js].gather(1, nxt[:, None])[:, 0].double()
        prefix = torch.cat([st.tok_lp.new_zeros(1), torch.cumsum(st.tok_lp[:m], 0)])
        ub = ((prefix[:m] if self.joint else 0) + (first if self.joint else torch.where(js == m - 1, first, 0.0))).cpu()

        store = self._new_store(sum(lens)) if keep else None
        if store is not None and any(reuse):
            self._copy_reused(store, old, off, reuse, b, seq)
            lp = store[2]
            for j in range(m):
                if reuse[j] > first_used[j]:
                    ub[j] += float(lp[off[j] + first_used[j]:off[j] + reuse[j]].sum())

        done = list(reuse)
        bound = self.bound and keep
        pred = self._predicted_cumsums(m, lens, first_used, old, b) if bound else None
        if bound:  # the candidates whose guessed complete scores are highest
            guessed = np.array([self._guessed_score(j, ub, pred, done) for j in range(m)])
            guess = set(int(j) for j in np.argsort(-guessed, kind="stable")[:self.guesses])
        else:
            guess = set(range(m))
        best = -np.inf
        alive = []
        for j in range(m):
            if done[j] == lens[j]:
                best = max(best, float(ub[j]))
            else:
                alive.append(j)
        while alive:
            new = self._wave_inputs(alive, guess, lens, done, ub, pred, best)
            guess = set()
            for cands in self._wave_blocks(alive, new):
                sums = self._block(seq, m, cands, [done[c] for c in cands], [new[c] for c in cands], off,
                                   first_used, store)
                for c, s in zip(cands, sums.tolist()):
                    ub[c] += s
                    done[c] += new[c]
                self.tokens += sum(new[c] for c in cands)
            for c in alive:
                if done[c] == lens[c]:
                    best = max(best, float(ub[c]))
            alive = [c for c in alive if done[c] < lens[c] and float(ub[c]) >= best - self.margin]
        scores = ub.numpy().astype(np.float64)
        tie_equal_neighbours(seq, m, scores, [d == n for d, n in zip(done, lens)])
        if store is not None:
            kv, h, lp = store
            self.suffixes = _Suffixes(kv, h, lp, off, lens, done, first)
        else:
            self.suffixes = None
        self.deleted = None
        return scores

    def _predicted_cumsums(self, m: int, lens: list[int], first_used: list[int], old: _Suffixes | None,
                           b: int) -> list[np.ndarray]:
        """Per candidate j, cumulative sums [lens[j] + 1] of a guess of its scored suffix log-probs: the
        previous step's log-probs of the same input where that candidate was scored (same deletion, one
        context token fewer), else the current sequence's own log-probs of the same targets (no deletion)."""
        tl = self.state.tok_lp.cpu().numpy()
        olp = old.lp.cpu().numpy() if old is not None else None
        out = []
        for j in range(m):
            g = tl[j + 2:j + 2 + lens[j]].copy()
            if olp is not None:
                if j < b:  # inputs from b-j-1 on were old inputs t+1 of old candidate j
                    lo, hi = max(0, b - j - 1), min(lens[j], old.done[j] - 1)
                    if hi > lo:
                        g[lo:hi] = olp[old.off[j] + lo + 1:old.off[j] + hi + 1]
                elif j + 1 < len(old.off):
                    hi = min(lens[j], old.done[j + 1])
                    g[:hi] = olp[old.off[j + 1]:old.off[j + 1] + hi]
            g[:first_used[j]] = 0.0
            out.append(np.concatenate([[0.0], np.cumsum(g)]))
        return out

    @staticmethod
    def _guessed_score(j: int, ub: torch.Tensor, pred: list[np.ndarray], done: list[int]) -> float:
        """Candidate j's complete score as guessed: its known terms plus the guess of its remaining log-probs."""
        return float(ub[j]) + pred[j][-1] - pred[j][done[j]]

    def _wave_inputs(self, alive: list[int], guess: set[int], lens: list[int], done: list[int], ub: torch.Tensor,
                     pred: list[np.ndarray] | None, best: float) -> dict[int, int]:
        """New inputs per alive candidate for the next wave. Without the bound: all. With it: the guesses
        all; the others as many as their guessed log-probs need to fall below the best complete score
        (before any is complete: the best guessed complete score), at least `wave`."""
        if pred is None:
            return {j: lens[j] - done[j] for j in alive}
        if not np.isfinite(best):
            best = max(self._guessed_score(j, ub, pred, done) for j in alive)
        thr = best - self.margin
        new = {}
        for j in alive:
            rest = lens[j] - done[j]
            if j in guess:
                new[j] = rest
                continue
            path = float(ub[j]) + pred[j][done[j] + 1:] - pred[j][done[j]]  # predicted bound after 1, 2, ... inputs
            below = np.flatnonzero(path < thr)
            need = int(below[0]) + 1 if len(below) else rest
            new[j] = min(rest, max(self.wave, need))
        return new

    def _wave_blocks(self, alive: list[int], new: dict[int, int]) -> list[list[int]]:
        """Consecutive runs of the alive candidates whose new inputs fit the token budget (at least one each)."""
        blocks, j = [], 0
        while j < len(alive):
            j2, used = j + 1, new[alive[j]]
            while j2 < len(alive) and used + new[alive[j2]] <= self.budget:
                used += new[alive[j2]]
                j2 += 1
            blocks.append(alive[j:j2])
            j = j2
        return blocks

    def _new_store(self, size: int):
        st = self.state
        kv = [(k.new_empty(k.shape[1], size, k.shape[3]), v.new_empty(v.shape[1], size, v.shape[3])) for k, v in st.kv]
        return kv, st.rows.new_empty(size, self.d), torch.zeros(size, dtype=torch.float64, device=self.dev)

    def _copy_reused(self, store, old, off, reuse, b, seq) -> None:
        """Copy each candidate's reused inputs from the previous state's slots into this state's, and rescore
        the one whose target changed (kept[b-1] now predicts seq[b], the token after the deleted one)."""
        dev = self.dev
        src = torch.tensor([old.off[j] + t for j, r in enumerate(reuse) for t in range(r)], dtype=torch.long, device=dev)
        dst = torch.tensor([off[j] + t for j, r in enumerate(reuse) for t in range(r)], dtype=torch.long, device=dev)
        kv, h, lp = store
        for (k, v), (ok, ov) in zip(kv, old.kv):
            k[:, dst] = ok[:, src]
            v[:, dst] = ov[:, src]
        h[dst] = old.h[src]
        lp[dst] = old.lp[src]
        fix = [j for j, r in enumerate(reuse) if r > 0 and r == b - j - 1]
        if fix:
            at = torch.tensor([off[j] + reuse[j] - 1 for j in fix], device=dev)
            lp[at] = self._target_lp(h[at], torch.full((len(fix),), seq[b], device=dev)).double()

    def suffix_sums(self, seq: list[int], m: int, kv, cands: list[int], lens: list[int]) -> torch.Tensor:
        """`CandidateScorer.suffix_sums` in the packed layout, nothing stored: blocks of consecutive
        candidates whose inputs fit the token budget, each one sequence over the prefix `kv`."""
        out = torch.zeros(len(cands), dtype=torch.float64)
        live = [i for i, ln in enumerate(lens) if ln > 0]
        new = {cands[i]: lens[i] for i in live}
        at = {cands[i]: i for i in live}
        used = {j: self.first_used(m, j) for j in new}
        for block in self._wave_blocks([cands[i] for i in live], new):
            sums = self._block(seq, m, block, [0] * len(block), [new[c] for c in block], dict.fromkeys(block, 0),
                               used, None, kv)
            self.tokens += sum(new[c] for c in block)
            out[[at[c] for c in block]] = sums
        return out.to(self.dev)

    def _block(self, seq, m, cands, done, new, off, first_used, store, kv=None) -> torch.Tensor:
        """Run suffix inputs done[i]:done[i]+new[i] of each candidate cands[i] (ascending), packed into one
        sequence after the shared prefix cache (`kv`; default: the current state's) and each candidate's
        already scored inputs (from `store`, written back there when given); returns each candidate's sum
        of the new scored log-probs [len(cands)]."""
        p, dev = self.p, self.dev
        kv = self.state.kv if kv is None else kv
        ids, tgt, pos, q_row, use, dst = [], [], [], [], [], []
        for i, (j, k, n) in enumerate(zip(cands, done, new)):
            start = j + 1 + k  # the first new input of candidate j
            ids += seq[start:start + n]
            tgt += seq[start + 1:start + n + 1]
            pos += range(p + j + k, p + j + k + n)
            q_row += [i] * n
            use += [t >= first_used[j] for t in range(k, k + n)]
            dst += range(off[j] + k, off[j] + k + n)
        if self.packed_attention:
            try:
                return self._block_packed(ids, tgt, pos, q_row, use, dst, cands, done, new, off, store, kv)
            except PackedAttentionUnsupported:
                self.packed_attention = False
        T = len(ids)
        known = [off[j] + t for j, k in zip(cands, done) for t in range(k)]
        k_row = [i for i, k in enumerate(done) for _ in range(k)]
        cache_len = p + cands[-1]  # the longest prefix any candidate of the block sees
        q_row_t = torch.tensor(q_row, device=dev)
        # keys: [0, cache_len) prefix positions, visible iff < p + j; then the scored inputs, visible to their
        # own candidate; then the T new inputs, visible to the same candidate's not-later ones
        lim = torch.tensor([p + cands[i] for i in q_row], device=dev)
        u = torch.arange(T, device=dev)
        allowed = torch.cat([
            torch.arange(cache_len, device=dev)[None] < lim[:, None],
            q_row_t[:, None] == torch.tensor(k_row, dtype=torch.long, device=dev)[None],
            (q_row_t[:, None] == q_row_t[None]) & (u[None] <= u[:, None]),
        ], dim=1)
        dtype = kv[0][0].dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=dev).masked_fill_(~allowed, torch.finfo(dtype).min)
        if known:
            known_t = torch.tensor(known, dtype=torch.long, device=dev)
            kv_in = [(torch.cat([k[:, :, :cache_len], sk[:, known_t][None]], 2),
                      torch.cat([v[:, :, :cache_len], sv[:, known_t][None]], 2))
                     for (k, v), (sk, sv) in zip(kv, store[0])]
        else:
            kv_in = [(k[:, :, :cache_len], v[:, :, :cache_len]) for k, v in kv]
        out = self.base(input_ids=torch.tensor([ids], device=dev), position_ids=torch.tensor([pos], device=dev),
                        attention_mask=mask[None, None], use_cache=True,
                        **cache_kwargs(self.base, cache_from_kv(kv_in)))
        h = out.last_hidden_state[0]
        lp = self._target_lp(h, torch.tensor(tgt, device=dev)).double()
        if store is not None:
            dst_t = torch.tensor(dst, dtype=torch.long, device=dev)
            base = cache_len + len(known)
            for (sk, sv), (k, v) in zip(store[0], layer_kv(output_cache(out))):
                sk[:, dst_t] = k[0, :, base:]
                sv[:, dst_t] = v[0, :, base:]
            store[1][dst_t] = h
            store[2][dst_t] = lp
        return self._block_sums(cands, q_row, use, lp)

    def _block_packed(self, ids, tgt, pos, q_row, use, dst, cands, done, new, off, store, kv) -> torch.Tensor:
        """`_block` through `packed_attention`: each chunk of candidates attends to its own keys only."""
        dev = self.dev
        blk = build_block(kv, store[0] if store is not None else None, self.p, cands, done, new, off, dst,
                          kv[0][0].dtype, dev, self.chunk_keys, self.groups)
        with packed_attention(self.model), active(blk):
            out = self.base(input_ids=torch.tensor([ids], device=dev), position_ids=torch.tensor([pos], device=dev),
                            use_cache=False)
        h = out.last_hidden_state[0]
        lp = self._target_lp(h, torch.tensor(tgt, device=dev)).double()
        if store is not None:  # keys and values: written by the attention
            store[1][blk.dst] = h
            store[2][blk.dst] = lp
        return self._block_sums(cands, q_row, use, lp)

    def _block_sums(self, cands, q_row, use, lp) -> torch.Tensor:
        dev = self.dev
        q_row_t = torch.tensor(q_row, device=dev)
        use_t = torch.tensor(use, dtype=torch.bool, device=dev)
        return torch.zeros(len(cands), dtype=torch.float64, device=dev).index_add_(0, q_row_t[use_t], lp[use_t]).cpu()

    @torch.no_grad()
    def advance(self, j: int) -> None:
        """kept[j] of the last scored state was deleted: its candidate suffix becomes the new sequence."""
        st, sf = self.state, self.suffixes
        if st is None or sf is None:
            self.state = None
            return
        p, m = self.p, len(st.kept)
        o, n = sf.off[j], sf.length[j]
        assert sf.done[j] == n, "the deleted candidate was not scored completely"
        kv = [(torch.cat([k[:, :, :p + j], sk[:, o:o + n][None]], 2), torch.cat([v[:, :, :p + j], sv[:, o:o + n][None]], 2))
              for (k, v), (sk, sv) in zip(st.kv, sf.kv)]
        tok_lp = torch.cat([st.tok_lp[:j], sf.first[j:j + 1], sf.lp[o:o + n]])
        rows = torch.cat([st.rows[:j + 1], self._logprobs(sf.h[o:o + m - j - 1])]) if m - j - 1 > 0 else st.rows[:j + 1]
        self.state = _State(st.kept[:j] + st.kept[j + 1:], kv, tok_lp, rows)
        self.deleted = j
