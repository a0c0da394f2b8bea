"""Per-chain work of `label`, `predict` and `prune`, shared by the local loop and the Ray engine.

A job is built from the command's parsed arguments (picklable: it travels to Ray workers), loads its
LM once (`load`), then turns one chain into one output record (`record`: the command's fields, the
chain's content hash, the run's settings, and for predict/prune the input's extra fields), raising
`ChainError` for a chain it must skip; `records` does a list (predict/prune: several chains per
forward pass, the local loop's --batch), with the same records as `record` one at a time. Both
engines make records this way, and check resumed records with the same `record_hash`, so their
outputs cannot drift apart.
"""
from __future__ import annotations

import argparse
from typing import Any

from ..chains import Chain
from ..jsonl_io import check_settings
from ..layout import ChainError


def _options(args: argparse.Namespace) -> argparse.Namespace:
    """The parsed arguments without the CLI's callback (a plain, picklable namespace)."""
    return argparse.Namespace(**{k: v for k, v in vars(args).items() if not k.startswith("_")})


def skip_kind(err: Exception) -> str:
    """The counted reason of a skipped chain, as `predictor predict` reports it ("empty reasoning", ...)."""
    from ..commands.predict import Skips

    s = Skips()
    s.add_chain_error(err)
    return next(iter(s.counts))


class ChainJob:
    """One command's per-chain work. Subclasses set `command`, `key` and implement the methods.

    key: the record fields that identify a finished record (resume and merge de-duplicate on it)."""

    command: str = ""
    key: tuple[str, ...] = ("id",)
    settings_fields: tuple[str, ...] = ()  # the keys of `settings()`, known before loading

    def __init__(self, args: argparse.Namespace):
        self.args = _options(args)

    def static_settings(self) -> dict[str, Any]:
        """Settings stored in every record that are known without loading the LM (checked on resume)."""
        raise NotImplementedError

    def load(self) -> None:
        """Load the LM / predictor (once per process)."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """All settings stored in every record and required to match on resume (after `load`)."""
        raise NotImplementedError

    def record(self, chain: Chain) -> dict[str, Any]:
        """The output record of one chain; raises layout.ChainError if the chain cannot be processed."""
        raise NotImplementedError

    def records(self, chains: list[Chain]) -> list[dict[str, Any] | ChainError]:
        """The records of several chains, in order; a chain that cannot be processed gets its ChainError
        in its place. Tries `_records_together` (several chains per forward pass) and, when one chain
        of the list fails, falls back to `record` one chain at a time (the error then names the chain)."""
        try:
            return list(self._records_together(chains))
        except ChainError:
            pass
        out: list[dict[str, Any] | ChainError] = []
        for c in chains:
            try:
                out.append(self.record(c))
            except ChainError as e:
                out.append(e)
        return out

    def _records_together(self, chains: list[Chain]) -> list[dict[str, Any]]:
        """The records of all chains (raises ChainError if one fails); default: one `record` each."""
        return [self.record(c) for c in chains]

    def record_hash(self, record: dict[str, Any]) -> str | None:
        """The content hash (`chains.chain_hash`) of the chain a finished record was written for; None if
        the record has none. A resumed run refuses a record whose hash differs from its input chain's."""
        return record.get("chain_hash")

    def over_budget(self, record: dict[str, Any]) -> bool:
        """True for a record that kept more tokens than its budget asked for (prune's protected tokens)."""
        return False

    def key_of(self, record: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(record.get(k)) for k in self.key)

    def chain_key(self, chain: Chain) -> tuple[str, ...]:
        """The key the record of `chain` will have."""
        return (chain.id,)

    def check_existing(self, record: dict[str, Any], where: str) -> None:
        """Refuse to resume output whose record `record` was written with other settings (ValueError)."""
        check_settings(where, record, self.settings())


class LabelJob(ChainJob):
    """`predictor label`: the exact greedy search -> ranked record (shared/DESIGN.md)."""

    command = "label"
    key = ("id", "objective")
    settings_fields = ("lm", "stride")

    def chain_key(self, chain: Chain) -> tuple[str, ...]:
        return (chain.id, self.args.objective)

    def record_hash(self, record: dict[str, Any]) -> str | None:
        from ..chains import chain_hash

        # ranked records store their chain's texts (shared/DESIGN.md): hash those
        return chain_hash(*(str(record.get(f, "")) for f in ("question", "reasoning", "answer")))

    def static_settings(self) -> dict[str, Any]:
        return {"stride": self.args.stride}

    def load(self) -> None:
        from ..commands.common import load_lm_from_args
        from ..cpu_matmul import uses_onednn

        self.lm = load_lm_from_args(self.args)
        self.matmul = "onednn" if uses_onednn(self.lm.model) else None

    def settings(self) -> dict[str, Any]:
        return {"lm": self.lm.fingerprint, "stride": self.args.stride}

    def cost(self, chain: Chain) -> float:
        """The search's cost for `chain` (`commands.label.search_cost`, token positions); raises
        ChainError for a chain that cannot be labeled or has more reasoning tokens than --max-tokens."""
        from ..commands.label import search_cost
        from ..layout import MaxTokensError, chain_name, encode_chain

        lay = encode_chain(self.lm.tokenizer, chain, self.lm.max_length)
        limit = getattr(self.args, "max_tokens", None)
        if limit is not None and lay.n > limit:
            raise MaxTokensError(f"{chain_name(chain)}: {lay.n} reasoning tokens, more than --max-tokens {limit}")
        return search_cost(lay.n, len(lay.answer_ids), self.args.stride)

    def record(self, chain: Chain) -> dict[str, Any]:
        from ..greedy import greedy_prune
        from ..ranked import ranked_record

        self.cost(chain)  # the --max-tokens check (the local loop has made it already; encoding is cheap)
        res = greedy_prune(self.lm, chain, self.args.objective, self.args.stride, self.args.batch_tokens)
        return ranked_record(chain, res, self.lm.fingerprint, self.args.objective, self.args.stride,
                             self.lm.tokenizer, device=self.lm.device.type, matmul=self.matmul)

    def check_existing(self, record: dict[str, Any], where: str) -> None:
        from ..ranked import layout_mismatch

        super().check_existing(record, where)
        diff = layout_mismatch(record, self.lm.tokenizer, self.lm.max_length)
        if diff:
            raise ValueError(f"{where}: field {diff} differs from this tokenizer's encoding of the chain; "
                             "new labels would mix two layouts: write to another file")


class _PredictorJob(ChainJob):
    """Common part of `predict` and `prune`: a RankPredictor from --scorer/--predictor/--model."""

    def load(self) -> None:
        from ..commands.predict import load_predictor_from_args

        self.rp = load_predictor_from_args(self.args)

    def settings(self) -> dict[str, Any]:
        return {"scorer": self.rp.name, "lm": self.rp.lm.fingerprint, **self.static_settings()}

    def _full_record(self, chain: Chain, fields: dict[str, Any]) -> dict[str, Any]:
        # extra input fields pass through; the fields this tool writes take precedence
        return {**chain.extra, **fields, "chain_hash": chain.content_hash, **self.settings()}


class PredictJob(_PredictorJob):
    """`predictor predict`: ranks of every reasoning token from --refresh forward passes."""

    command = "predict"
    settings_fields = ("scorer", "lm", "refresh")

    def static_settings(self) -> dict[str, Any]:
        return {"refresh": self.args.refresh}

    def record(self, chain: Chain) -> dict[str, Any]:
        from ..commands.predict import predict_record

        return self._full_record(chain, predict_record(self.rp, chain, self.args.refresh))

    def _records_together(self, chains: list[Chain]) -> list[dict[str, Any]]:
        from ..commands.predict import predict_records

        return [self._full_record(c, f) for c, f in zip(chains, predict_records(self.rp, chains, self.args.refresh))]


class PruneJob(_PredictorJob):
    """`predictor prune`: the chain pruned to the budget of --keep / --keep-tokens / --threshold."""

    command = "prune"
    settings_fields = ("scorer", "lm", "settings", "gap_cost", "position_weight")

    def static_settings(self) -> dict[str, Any]:
        a = self.args
        return {"settings": {"keep": a.keep, "keep_tokens": a.keep_tokens, "threshold": a.threshold,
                             "step_aware": a.step_aware, "protect": a.protect, "refresh": a.refresh,
                             "gap_cost": getattr(a, "gap_cost", None),
                             "position_weight": getattr(a, "position_weight", None)}}

    def settings(self) -> dict[str, Any]:
        """Also the contiguity settings the selection uses (after `load`: the options as given fall back
        on the predictor's `prune_defaults`), so that records pruned under other predictor defaults are
        refused on resume, not mixed."""
        from ..pruning import resolve_contiguity

        a = self.args
        gap_cost, position_weight = resolve_contiguity(self.rp, getattr(a, "gap_cost", None),
                                                       getattr(a, "position_weight", None), a.step_aware, a.threshold)
        return {**super().settings(), "gap_cost": gap_cost, "position_weight": position_weight}

    def record(self, chain: Chain) -> dict[str, Any]:
        from ..commands.prune import prune_record

        return self._full_record(chain, prune_record(self.rp, chain, self.args))

    def _records_together(self, chains: list[Chain]) -> list[dict[str, Any]]:
        from ..commands.prune import prune_records

        return [self._full_record(c, f) for c, f in zip(chains, prune_records(self.rp, chains, self.args))]

    def over_budget(self, record: dict[str, Any]) -> bool:
        budget = record.get("budget")  # as pruning.PruneResult.over_budget, from the record's fields
        return budget is not None and len(record["kept"]) > budget
