"""One forward pass per chain -> an `Observation` that serves every scorer and the feature extractor.

The pass runs over prompt + full reasoning + answer + an appended end-of-reasoning probe
("Think Clearly"-style, Choi et al. 2025). Attention is causal, so the probe changes nothing at the
earlier positions. Several chains share a pass (`observe_batch`): right-padded, so every real
token keeps its position ids and sees exactly the keys it sees alone, and no mask is needed beyond
the causal one (pad rows are computed and ignored). Attention statistics ([heads, n] per layer
over the n reasoning keys, `predictor.attention_stats`) come from the layer's queries and keys in
blocks while sdpa computes the pass ("chunked"), or, as the reference, from eager attention's
weights reduced in per-layer hooks ("eager"). Passes without attention run plain sdpa.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .attention_flow import flow_attention
from .attention_stats import ATTENTION_STATS, Span, chunked_stats, reduce_weights, stats_attention, supports_chunked
from .batching import plan_batches, token_budget
from .chains import Chain, ChainLike, as_chain
from .layout import Layout, ProbeTooLongError, chain_name, encode_chain
from .lm import LM, base_and_head
from .objective import upcast

DEFAULT_PROBE = "\n\nTime is up. I should stop thinking and now summarize the final answer."
LOGIT_CHUNK = 1 << 22  # logits per lm-head chunk (rows x vocab): [rows, vocab] buffers of 16 MiB; smaller
# chunks re-read the whole head weight (113 MiB for SmolLM2) from memory too often: 3x slower at 3,000 tokens
WINDOW = 8  # SnapKV observation window: the last queries of the scored sequence

ATTENTION_METHODS = ("auto", "chunked", "eager")
__all__ = ["ATTENTION_STATS", "Observation", "observe", "observe_batch", "observe_many", "chunked_stats"]


@dataclass
class Observation:
    """What one forward pass tells about one chain's n reasoning tokens.

    attn[stat]: float32 [layers, heads, n] (ATTENTION_STATS), empty when observed without attention.
    hidden[l]: float32 [n, d_model], the residual stream at each reasoning token after decoder layer l
    (1-based; l = num_layers is the final, normed output), for the layers asked for (else empty).
    flow[stat]: float32, `attention_flow.FLOW_STATS` [layers, heads, n] and MULTIHOP_STATS, only when
    observed with flow=True (value-norm-weighted and multi-hop attention; else empty).
    logprob/entropy/token_rank: float32 [n]: log p(token | prefix), predictive entropy (nats) at the
    token's position, and the token's rank under that prediction (1 = argmax).
    skip_logprob/next_logprob: float32 [n], the next token's log-prob without and with token j in its
    prefix: log p(x_{j+1} | x_{<j}) and log p(x_{j+1} | x_{<=j}), x_{j+1} the next reasoning token or,
    for the last one, the first answer token (NaN without an answer); with logprob they give the exact
    local part of greedy's deletion gain (`greedy.candidates.local_gains`). Empty when not computed.
    loo_gain: float64 [n], greedy's exact leave-one-out gains when a caller supplies them (the `loo`
    feature group computes them from `lm` otherwise); empty by default.
    """

    chain: Chain
    layout: Layout
    logprob: np.ndarray
    entropy: np.ndarray
    token_rank: np.ndarray
    attn: dict[str, np.ndarray] = field(default_factory=dict)
    hidden: dict[int, np.ndarray] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    flow: dict[str, np.ndarray] = field(default_factory=dict)
    skip_logprob: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    next_logprob: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    loo_gain: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seconds: float = 0.0
    lm: LM | None = field(default=None, repr=False, compare=False)

    @property
    def n(self) -> int:
        return self.layout.n

    @property
    def surprisal(self) -> np.ndarray:
        return -self.logprob

    def local_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(logprob, skip_logprob, next_logprob) as float64 [n], NaN (no answer token) as 0: greedy's JOINT
        local deletion gain is skip - next - logprob (`greedy.candidates.local_gains`). Raises ValueError
        for an observation without skip/next log-probs (observed with forward=False)."""
        n = self.n
        if self.skip_logprob.shape != (n,) or self.next_logprob.shape != (n,):
            raise ValueError("greedy's local gain needs an observation with skip_logprob and next_logprob "
                             "(observe with a forward)")
        lp, skip, nxt = (np.nan_to_num(x.astype(np.float64)) for x in (self.logprob, self.skip_logprob,
                                                                        self.next_logprob))
        return lp, skip, nxt

    def local_gains(self) -> np.ndarray:
        """float64 [n]: greedy's exact local deletion gain (JOINT): minus the token's own log-prob term plus
        the next token's log-prob change, skip - next - logprob (`local_terms`)."""
        lp, skip, nxt = self.local_terms()
        return skip - nxt - lp


def attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The self-attention module of every decoder layer, in depth order."""
    base, _, _ = base_and_head(model)
    layers = getattr(base, "layers", None) or getattr(base, "h", None)
    if layers is not None:
        mods = [getattr(l, "self_attn", None) or getattr(l, "attn", None) for l in layers]
        if all(m is not None for m in mods):
            return mods
    mods = [m for name, m in model.named_modules() if name.endswith(("self_attn", ".attn"))]
    if not mods:
        raise RuntimeError(f"cannot find attention modules in {type(model).__name__}")
    return mods


def layers_at_depths(num_layers: int, depths: tuple[float, ...]) -> tuple[int, ...]:
    """1-based decoder layers nearest to relative depths in (0, 1] (1.0 = the last layer), sorted, unique."""
    return tuple(sorted({min(num_layers, max(1, round(float(d) * num_layers))) for d in depths}))


@contextlib.contextmanager
def eager_attention(model: torch.nn.Module):
    """Temporarily switch to eager attention (the only one that returns weights)."""
    old = model.config._attn_implementation
    if old != "eager":
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if old != "eager":
            model.set_attn_implementation(old)



def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The decoder layers of the stack, in depth order."""
    base, _, _ = base_and_head(model)
    layers = getattr(base, "layers", None) or getattr(base, "h", None)
    if layers is None:
        raise RuntimeError(f"cannot find the decoder layers of {type(model).__name__}")
    return list(layers)


def _layout(lm: LM, chain: Chain, kept: list[int] | None) -> Layout:
    lay = encode_chain(lm.tokenizer, chain, lm.max_length)
    if kept is not None:
        if not kept or sorted(set(kept)) != list(kept) or kept[0] < 0 or kept[-1] >= lay.n:
            raise ValueError(f"kept must be sorted unique indices in [0, {lay.n}), got {kept!r:.80}")
        lay = Layout(lay.prompt_ids, [lay.reasoning_ids[i] for i in kept], lay.answer_ids)
    return lay


def _logit_stats(head: torch.nn.Module, cap: float | None, h: torch.Tensor, tgt: torch.Tensor,
                 tgt2: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """log p(target), entropy and rank of each row of h [m, d] predicting tgt [m], in lm-head chunks
    (a [m, vocab] tensor and its copies would dwarf the forward itself); with tgt2 [m] also each row's
    log p(tgt2) (a fourth tensor)."""
    parts, rows = [], max(1, LOGIT_CHUNK // head.out_features if hasattr(head, "out_features") else 64)
    for a in range(0, len(h), rows):
        logits = upcast(head(h[a:a + rows]))
        if cap:
            logits = torch.tanh(logits / cap) * cap
        lp = torch.log_softmax(logits, dim=-1)
        del logits
        t_lp = lp.gather(1, tgt[a:a + len(lp), None])[:, 0]
        ent = -lp.exp().mul_(lp).sum(-1)
        extra = (lp.gather(1, tgt2[a:a + len(lp), None])[:, 0],) if tgt2 is not None else ()
        parts.append((t_lp, ent, (lp > t_lp[:, None]).sum(-1) + 1, *extra))
    return tuple(torch.cat(x) for x in zip(*parts))  # type: ignore[return-value]


def _pad_id(tokenizer) -> int:
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        i = getattr(tokenizer, name, None)
        if isinstance(i, int):
            return i
    return 0


def _forward_batch(lm: LM, lays: list[Layout], seqs: list[list[int]], attention: bool, window: int,
                   hidden_layers: tuple[int, ...], method: str, flow: bool = False) -> list[tuple]:
    """One right-padded forward pass over seqs; per row: (logprob, entropy, rank, attn, hidden, flow,
    skip_logprob, next_logprob)."""
    base, head, cap = base_and_head(lm.model)
    B, T = len(seqs), max(len(s) for s in seqs)
    x = torch.full((B, T), _pad_id(lm.tokenizer), dtype=torch.long)
    for b, s in enumerate(seqs):
        x[b, :len(s)] = torch.tensor(s)
    x = x.to(lm.device)
    spans = [Span(len(l.prompt_ids), l.n, l.total, len(s), window) for l, s in zip(lays, seqs)]
    hidden: dict[int, list[np.ndarray]] = {}
    handles = []
    L = lm.num_layers

    def keep_hidden(l: int):
        def hook(_mod, _inp, out):
            hs = out[0] if isinstance(out, tuple) else out
            hidden[l] = [hs[b, sp.p:sp.p + sp.n].to("cpu", torch.float32).numpy() for b, sp in enumerate(spans)]
        return hook

    layers = decoder_layers(lm.model) if hidden_layers else []
    handles += [layers[l - 1].register_forward_hook(keep_hidden(l)) for l in hidden_layers if l < L]
    stats: dict[int, list] = {}
    ctx: contextlib.AbstractContextManager = contextlib.nullcontext()
    mods = attention_modules(lm.model) if attention else []
    if attention and method == "chunked":
        ctx = stats_attention(lm.model, mods, spans)
    elif attention:  # the eager reference: full weights, reduced right away in a hook per layer
        def eager_hook(i: int):
            def hook(_mod, _inp, out):
                w = out[1]
                if w is None:
                    raise RuntimeError("attention weights not returned; the model ignores eager attention")
                # copy=True: a stat that is a view (e.g. "last") would otherwise keep the T x T map alive
                stats[i] = [{k: v.to("cpu", torch.float32, copy=True)
                             for k, v in reduce_weights(w[b, :, :sp.length, :sp.length], sp.p, sp.n, sp.scored,
                                                           window).items()}
                            for b, sp in enumerate(spans)]
                return (out[0], None) + tuple(out[2:])  # drop the T x T map right away
            return hook
        handles += [m.register_forward_hook(eager_hook(i)) for i, m in enumerate(mods)]
        ctx = eager_attention(lm.model)
    flows: list = []
    try:
        with contextlib.ExitStack() as stack:
            collected = stack.enter_context(ctx)
            if flow:  # inside ctx: the flow wrapper calls whatever attention ctx switched on
                flows = stack.enter_context(flow_attention(lm.model, attention_modules(lm.model),
                                                           decoder_layers(lm.model), spans))
            out = base(input_ids=x, use_cache=False)
        if attention and method == "chunked":
            stats = collected
    finally:
        for hd in handles:
            hd.remove()
    h = out.last_hidden_state
    del out
    if L in hidden_layers:
        hidden[L] = [h[b, sp.p:sp.p + sp.n].to("cpu", torch.float32).numpy() for b, sp in enumerate(spans)]
    sel = torch.cat([h[b, sp.p - 1:sp.p - 1 + sp.n] for b, sp in enumerate(spans)])  # rows predicting reasoning
    tgt = torch.tensor([t for l in lays for t in l.reasoning_ids], device=lm.device)
    # the token after each reasoning token (the next one, or the first answer token; a dummy 0 without
    # an answer, masked to NaN below): row j's log-prob of it skips token j
    after = [t for l in lays for t in (l.reasoning_ids[1:] + l.answer_ids[:1] + [0] * (not l.answer_ids))]
    tok_lp, entropy, rank, skip = (v.cpu() for v in _logit_stats(head, cap, sel, tgt,
                                                                  torch.tensor(after, device=lm.device)))
    # log p(first answer token | prompt + all reasoning): the last reasoning token's next_logprob
    last_rows = torch.stack([h[b, min(sp.p - 1 + sp.n, h.shape[1] - 1)] for b, sp in enumerate(spans)])
    first_ans = torch.tensor([l.answer_ids[0] if l.answer_ids else 0 for l in lays], device=lm.device)
    ans_lp = _logit_stats(head, cap, last_rows, first_ans)[0].cpu()
    res, a = [], 0
    for b, sp in enumerate(spans):
        attn = {k: torch.stack([stats[i][b][k] for i in range(len(mods))]).numpy() for k in ATTENTION_STATS} \
            if attention else {}
        lp_b = tok_lp[a:a + sp.n].float().numpy()
        nan = np.float32(np.nan)
        nxt = np.append(lp_b[1:], ans_lp[b].float().numpy() if lays[b].answer_ids else nan).astype(np.float32)
        skp = skip[a:a + sp.n].float().numpy().copy()
        if not lays[b].answer_ids:
            skp[-1] = nan
        res.append((lp_b, entropy[a:a + sp.n].float().numpy(),
                    rank[a:a + sp.n].numpy().astype(np.float32), attn, {l: hidden[l][b] for l in hidden_layers},
                    {k: v.numpy() for k, v in flows[b].items()} if flow else {}, skp, nxt))
        a += sp.n
    return res


@torch.no_grad()
def observe_batch(lm: LM, chains: list[ChainLike], attention: bool = True, probe: str | None = DEFAULT_PROBE,
                  window: int = WINDOW, kept: list[list[int] | None] | None = None,
                  hidden_layers: tuple[int, ...] = (), hidden_depths: tuple[float, ...] = (),
                  forward: bool = True, method: str = "auto", budget: int | None = None,
                  flow: bool = False) -> list[Observation]:
    """`observe` for several chains, several per forward pass; the same results as one at a time.

    kept: per chain, the reasoning indices to observe (or None for all). method: "chunked" (sdpa +
    blockwise statistics from queries and keys), "eager" (the reference: eager attention weights),
    "auto" (chunked for sdpa models, else eager). budget: padded token slots per pass (default
    `batching.token_budget`: fixed on CPU, by free memory on GPU); 1 observes one chain per pass.
    flow: also collect `Observation.flow` (value-norm-weighted and multi-hop attention, `attention_flow`).
    Raises ChainError (empty, too long) or ProbeTooLongError (the chain fits, the probe does not; see
    `observe`) for the first unscorable chain, before any pass runs.
    """
    t0 = time.perf_counter()
    if method not in ATTENTION_METHODS:
        raise ValueError(f"method must be one of {ATTENTION_METHODS}, got {method!r}")
    chains_ = [as_chain(c) for c in chains]
    kept_ = list(kept) if kept is not None else [None] * len(chains_)
    if len(kept_) != len(chains_):
        raise ValueError(f"kept has {len(kept_)} entries for {len(chains_)} chains")
    lays = [_layout(lm, c, k) for c, k in zip(chains_, kept_)]
    decode = lambda lay: [lm.tokenizer.decode([t]) for t in lay.reasoning_ids]  # noqa: E731
    if not forward:
        out = []
        for c, lay in zip(chains_, lays):
            nan = np.full(lay.n, np.nan, dtype=np.float32)
            out.append(Observation(chain=c, layout=lay, logprob=nan, entropy=nan.copy(), token_rank=nan.copy(),
                                   tokens=decode(lay), seconds=(time.perf_counter() - t0) / max(1, len(lays)), lm=lm))
        return out
    hidden_layers = tuple(sorted(set(hidden_layers) | set(layers_at_depths(lm.num_layers, hidden_depths))))
    bad = [l for l in hidden_layers if not 1 <= l <= lm.num_layers]
    if bad:
        raise ValueError(f"hidden_layers {bad} outside 1..{lm.num_layers}")
    if method == "auto":
        method = "chunked" if supports_chunked(lm.model) else "eager"
    probe_ids = list(lm.tokenizer(probe, add_special_tokens=False)["input_ids"]) if (probe and attention) else []
    seqs = []
    for c, lay in zip(chains_, lays):
        ids = lay.sequence() + probe_ids
        if len(ids) > lm.max_length:  # never score with silently empty probe statistics
            raise ProbeTooLongError(f"{chain_name(c)}: {lay.total} tokens + the {len(probe_ids)}-token probe exceed "
                                    f"the LM's context of {lm.max_length}; the probe features need the probe")
        seqs.append(ids)
    if budget is None:
        budget = token_budget(lm.model, eager=attention and method == "eager", length=max(map(len, seqs), default=0))
    results: list[Observation | None] = [None] * len(lays)
    for batch in plan_batches([len(s) for s in seqs], budget):
        tb = time.perf_counter()
        rows = _forward_batch(lm, [lays[i] for i in batch], [seqs[i] for i in batch], attention, window,
                              hidden_layers, method, flow)
        sec = (time.perf_counter() - tb) / len(batch)
        for i, (lp, ent, rank, attn, hid, flo, skp, nxt) in zip(batch, rows):
            results[i] = Observation(chain=chains_[i], layout=lays[i], logprob=lp, entropy=ent, token_rank=rank,
                                     attn=attn, hidden=hid, flow=flo, skip_logprob=skp, next_logprob=nxt,
                                     tokens=decode(lays[i]), seconds=sec, lm=lm)
    return results  # type: ignore[return-value]


def observe(lm: LM, chain: ChainLike, attention: bool = True, probe: str | None = DEFAULT_PROBE,
            window: int = WINDOW, kept: list[int] | None = None,
            hidden_layers: tuple[int, ...] = (), hidden_depths: tuple[float, ...] = (),
            forward: bool = True, method: str = "auto", flow: bool = False) -> Observation:
    """Run one forward pass over a chain (default layout + probe) and collect what scorers need.

    kept: observe only these reasoning token indices (sorted), e.g. the survivors of a partial
    pruning; the observation's n is then len(kept) and its rows follow `kept`.
    hidden_layers: 1-based decoder layers whose residual stream at the reasoning tokens to keep
    (`Observation.hidden`); raises ValueError outside 1..num_layers. hidden_depths: the same as
    relative depths in (0, 1] (`layers_at_depths`), added to hidden_layers.
    forward=False: no LM pass at all, only the layout and tokens (logprob/entropy/token_rank are NaN),
    for scorers that run a model of their own (e.g. a fine-tuned LM scorer).
    method: how attention statistics are computed ("auto", "chunked", "eager"; see `observe_batch`).
    Raises ChainError for an unscorable chain, and ProbeTooLongError when the chain fits the context
    but the probe (with attention) does not: pass probe=None when no probe statistic is read.
    """
    return observe_batch(lm, [chain], attention=attention, probe=probe, window=window, kept=[kept],
                         hidden_layers=hidden_layers, hidden_depths=hidden_depths, forward=forward,
                         method=method, flow=flow)[0]


def observe_many(lm: LM, chains: ChainLike | list[ChainLike], **kw) -> list[Observation]:
    """`observe_batch` for one chain or a list."""
    from .chains import as_chain_list

    return observe_batch(lm, as_chain_list(chains)[0], **kw)
