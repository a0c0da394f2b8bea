"""Per-chain work of `predict` and `prune` (and the base of `label_job.LabelJob`), shared by the local
loop and the Ray engine.

A job is built from the command's parsed arguments (picklable: it travels to Ray workers), loads its
LM once (`load`), then turns one chain into one output record (`record`: the command's fields, the
chain's content hash, the run's settings, and for predict/prune the input's extra fields), raising
`ChainError` for a chain it must skip; `records` does a list (predict/prune: several chains per
forward pass, the local loop's --batch), with the same records as `record` one at a time. Both
engines make records this way, and check resumed records with the same `record_hash`, so their
outputs cannot drift apart. A job also names its reader and output (`read_input`, `open_output`) and
each chain's cost (`cost`), which the local loop (`engines.local`) and `ray_data` use alike.
"""
from __future__ import annotations

import argparse
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..chains import Chain
from ..jsonl_io import SettingWords, check_settings
from ..layout import ChainError, encode_chain
from .chain_io import AtomicResumableOutput, ChainList, InPlaceOutput, Skips, StreamedChains, check_paths
from .cli_args import BATCH


def _options(args: argparse.Namespace) -> argparse.Namespace:
    """The parsed arguments without the CLI's callback (a plain, picklable namespace)."""
    return argparse.Namespace(**{k: v for k, v in vars(args).items() if not k.startswith("_")})


class ChainJob:
    """One command's per-chain work. Subclasses set `command`, `key` and implement the methods.

    key: the record fields that identify a finished record (resume and merge de-duplicate on it)."""

    command: str = ""
    key: tuple[str, ...] = ("id",)
    settings_fields: tuple[str, ...] = ()  # the keys of `settings()`, known before loading

    resumes_before_loading = False  # whether the local loop can tell before loading that all is done
    batch = 1  # chains the local loop hands to `records` together

    def __init__(self, args: argparse.Namespace):
        self.args = _options(args)

    def check_paths(self) -> None:
        """Refuse paths that cannot work (before anything loads)."""

    def read_input(self, skips: Skips, whole: bool = False) -> StreamedChains | ChainList:
        """The input chains (`--in`, `--limit` unless `whole`), malformed lines counted in `skips`."""
        return StreamedChains(self.args.inp, skips, None if whole else self.args.limit)

    def open_output(self) -> AtomicResumableOutput | InPlaceOutput:
        """The resumable output (`--out`; after `load`): OUT.partial, renamed over OUT when done."""
        return AtomicResumableOutput(self.args.out, match=self.settings(), content=self.record_hash,
                                     words=self.setting_words)

    def cost(self, chain: Chain) -> float:
        """The work of one chain for the progress bar (raises ChainError for a chain to skip)."""
        return 1.0

    def describe(self) -> str:
        """What made the records (after `load`), for the run's last line."""
        raise NotImplementedError

    def start_note(self, longest: int | None = None) -> str | None:
        """A note for stderr before the work starts (after `load`), or None; longest: the reasoning tokens of
        the longest chain to do (`num_tokens`), when known."""
        return None

    def planned_note(self) -> str | None:
        """`start_note` known before the LM loads (`--engine ray`, whose workers load it), without its
        estimate for the longest chain; None by default."""
        return None

    def num_tokens(self, chain: Chain) -> int:
        """Reasoning tokens of `chain` (after `load`; raises ChainError for a chain to skip)."""
        raise NotImplementedError

    def static_settings(self) -> dict[str, Any]:
        """Settings stored in every record that are known without loading the LM (checked on resume)."""
        raise NotImplementedError

    def summary(self) -> str | None:
        """A line for the end of the run beyond the records written (label: the LM tokens spent), or None."""
        return None

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

    def setting_words(self, field: str, record: Mapping[str, Any], run: Mapping[str, Any]) -> SettingWords | None:
        """The differing setting `field` in this command's options, for resume refusals
        (`jsonl_io.check_settings`); None: the message names the stored field alone."""
        return None

    def check_existing(self, record: dict[str, Any], where: str) -> None:
        """Refuse to resume output whose record `record` was written with other settings (ValueError)."""
        check_settings(where, record, self.settings(), words=self.setting_words)


class _PredictorJob(ChainJob):
    """Common part of `predict` and `prune`: a RankPredictor from --scorer/--predictor/--model."""

    resumes_before_loading = True

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        if self.args.refresh < 1:
            raise ValueError(f"--refresh must be >= 1 (forward passes per chain), got {self.args.refresh}")
        self.batch = getattr(self.args, "batch", BATCH)
        if self.batch < 1:
            raise ValueError(f"--batch must be >= 1, got {self.batch}")

    def check_paths(self) -> None:
        from .record_io import check_stream_paths, is_stdio, is_stream

        check_stream_paths(self.args.inp, self.args.out, getattr(self.args, "engine", "local"))
        if not (is_stdio(self.args.inp) or is_stream(self.args.out)):
            check_paths(self.args.inp, self.args.out)
        elif not is_stdio(self.args.inp):  # the input must be a file; a stream cannot overwrite it
            if Path(self.args.inp).is_dir():
                raise ValueError(f"{self.args.inp}: is a directory, not a chains file")
            if not Path(self.args.inp).is_file():
                raise FileNotFoundError(f"{self.args.inp}: no such input file")
        if getattr(self.args, "field", None):  # a bad mapping is refused before anything loads
            from ..chain_formats import parse_fields

            parse_fields(self.args.field)
            if getattr(self.args, "format", "auto") != "auto":
                raise ValueError(f"--field maps the fields of other schemas; it does not apply to --format "
                                 f"{self.args.format}")

    @property
    def streams(self) -> bool:
        """True when OUT is a stream (`record_io.is_stream`: "-", a FIFO, a character device): no resume."""
        from .record_io import is_stream

        return is_stream(self.args.out)

    def read_input(self, skips: Skips, whole: bool = False):
        """The input records (`record_io.FormattedChains`: --format / --field, JSON arrays, "-" = stdin)."""
        from .record_io import FormattedChains

        announce = None if getattr(self, "_announced", False) else self.command
        self._announced = True  # the format found is said once, on the first read
        return FormattedChains(self.args.inp, skips, None if whole else self.args.limit,
                               getattr(self.args, "format", "auto"), getattr(self.args, "field", None),
                               announce=announce)

    def open_output(self):
        """OUT.partial renamed over OUT when done, or a stream (`record_io.StreamOutput`) for "-" / a pipe."""
        from .record_io import StreamOutput

        if self.streams:
            return StreamOutput(self.args.out)
        return super().open_output()

    def load(self) -> None:
        from .cli_args import load_predictor_from_args

        self.rp = load_predictor_from_args(self.args)

    def describe(self) -> str:
        return repr(self.rp)

    def start_note(self, longest: int | None = None) -> str | None:
        """The cost note of a predictor that runs LM passes beyond its one forward pass
        (`RankPredictor.extra_pass_note`, e.g. smollm2-joint-loo); None for one-pass predictors."""
        note = getattr(self.rp, "extra_pass_note", None)  # `prune --ranks` runs no pass
        return note(longest) if note is not None else None

    def planned_note(self) -> str | None:
        """The cost note of a predictor named by --predictor (a shipped name or a directory), read from its
        predictor.json without loading anything; None for --scorer, --ranks or the LM's default predictor
        (never one that runs extra passes: `predictor_dir.shipped_predictor_for`)."""
        from ..predictor_dir import METADATA_FILE, extra_pass_note, named_predictor_dir, read_metadata

        name = getattr(self.args, "predictor", None)
        if not name or getattr(self.args, "scorer", None) or getattr(self.args, "ranks", None):
            return None
        path = named_predictor_dir(name) or Path(name)
        return extra_pass_note(path.name, read_metadata(path)) if (path / METADATA_FILE).is_file() else None

    def num_tokens(self, chain: Chain) -> int:
        return self.rp.num_tokens(chain)

    def settings(self) -> dict[str, Any]:
        return {"scorer": self.rp.name, "lm": self.rp.lm.fingerprint, **self.static_settings()}

    def setting_words(self, field: str, record: Mapping[str, Any], run: Mapping[str, Any]) -> SettingWords | None:
        """In predict / prune options (`setting_words.predictor_words`): "--keep 0.5", "--scorer surprisal"."""
        from .setting_words import predictor_words

        lm = getattr(getattr(self, "rp", None), "lm", None)  # loaded: this run's LM is named
        return predictor_words(field, record, run, lm.name if lm is not None else None)

    def _full_record(self, chain: Chain, fields: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
        # extra input fields pass through (or the whole input record, `base`); the fields this tool writes take
        # precedence
        return {**(chain.extra if base is None else base), **fields, "chain_hash": chain.content_hash,
                **self.settings()}


class PredictJob(_PredictorJob):
    """`predictor predict`: ranks of every reasoning token from --refresh forward passes."""

    command = "predict"
    settings_fields = ("scorer", "lm", "refresh")

    def static_settings(self) -> dict[str, Any]:
        return {"refresh": self.args.refresh}

    def record(self, chain: Chain) -> dict[str, Any]:
        lay_ids = encode_chain(self.rp.lm.tokenizer, chain, self.rp.lm.max_length).reasoning_ids  # ChainError first
        return self._full_record(chain, self._fields(chain, lay_ids, self.rp.predict_ranks(chain, refresh=self.args.refresh)))

    def _records_together(self, chains: list[Chain]) -> list[dict[str, Any]]:
        """(raises ChainError naming the list index if one chain is unscorable)"""
        lm = self.rp.lm
        ids = [encode_chain(lm.tokenizer, c, lm.max_length).reasoning_ids for c in chains]  # ChainError first
        ranks = self.rp.predict_ranks(chains, refresh=self.args.refresh)
        return [self._full_record(c, self._fields(c, i, r)) for c, i, r in zip(chains, ids, ranks)]

    def _full_record(self, chain: Chain, fields: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
        """The chain's extra fields pass through, less the greedy search's own fields when the input is a
        ranked record (`ranked.LABEL_FIELDS`: its trajectory, seconds, ... are not these ranks')."""
        from ..ranked import LABEL_FIELDS, not_ranked

        extra = dict(chain.extra)
        if not_ranked({**extra, **chain.to_dict()}) is None:
            extra = {k: v for k, v in extra.items() if k not in LABEL_FIELDS}
        return super()._full_record(chain, fields, extra if base is None else base)

    def _fields(self, chain: Chain, lay_ids: list[int], ranks) -> dict[str, Any]:
        import numpy as np

        from ..token_text import token_pieces

        from ..chain_formats import out_id

        defaults = getattr(self.rp, "prune_defaults", None)  # for `prune --ranks` (not a setting: not matched)
        return {"id": out_id(chain), "n": len(ranks), "ranks": ranks.tolist(),
                "order": np.argsort(ranks, kind="stable").tolist(), "tokens": token_pieces(self.rp.lm.tokenizer, lay_ids),
                **({"prune_defaults": defaults} if defaults else {})}


class PruneJob(_PredictorJob):
    """`predictor prune`: the chain pruned to the budget of --keep / --keep-tokens / --threshold."""

    command = "prune"
    settings_fields = ("scorer", "lm", "settings", "gap_cost", "position_weight")

    def __init__(self, args: argparse.Namespace):
        from .cli_args import prune_options

        super().__init__(args)
        a = self.args
        self.options = prune_options(keep_ratio=a.keep, keep_tokens=a.keep_tokens, threshold=a.threshold,
                                     protect=a.protect, step_aware=a.step_aware, refresh=a.refresh,
                                     gap_cost=getattr(a, "gap_cost", None),
                                     position_weight=getattr(a, "position_weight", None))
        self.ranks = None  # --ranks FILE: a predict output, read by id (no forward pass)
        if getattr(a, "ranks", None):
            self._check_ranks_options()

    def _check_ranks_options(self) -> None:
        import dataclasses

        from .record_io import RanksFile

        a = self.args
        if a.threshold is not None:
            raise ValueError("--ranks works with --keep / --keep-tokens; --threshold needs the scores (one forward "
                             "pass): drop --ranks")
        if a.scorer or a.predictor:
            raise ValueError("--ranks FILE gives the ranks (of the scorer its predict run used): drop --scorer / "
                             "--predictor")
        self.ranks = RanksFile(a.ranks)
        if a.refresh != self.ranks.refresh:
            raise ValueError(f"--ranks {a.ranks} holds ranks predicted with --refresh {self.ranks.refresh}; pass "
                             f"--refresh {self.ranks.refresh} (or predict again)")
        self.prune_with = dataclasses.replace(self.options, refresh=1)  # the ranks are final

    def load(self) -> None:
        if self.ranks is None:
            return super().load()
        from .cli_args import load_lm_from_args
        from .record_io import GivenRanks

        lm = load_lm_from_args(self.args, matmul=False)  # its tokenizer and context: no forward pass runs
        if not self.args.no_check_lm and self.ranks.lm and lm.fingerprint != self.ranks.lm:
            raise ValueError(f"--ranks {self.args.ranks} was predicted with LM fingerprint {self.ranks.lm}, but "
                             f"--model gives {lm.name!r} [{lm.fingerprint}]: pass the --model of the predict run "
                             "(or --no-check-lm)")
        self.rp = GivenRanks(lm, self.ranks)

    def _prune(self, chains: Chain | list[Chain]):
        """The PruneResult of one chain (or a list of them: several per forward pass)."""
        if self.ranks is None:
            return self.rp.prune(chains, options=self.options, warn=False)
        from ..pruning import prune_with

        ranks = (self.ranks.ranks_for(chains) if isinstance(chains, Chain)
                 else [self.ranks.ranks_for(c) for c in chains])
        return prune_with(self.rp, chains, options=self.prune_with, ranks=ranks, warn=False)

    def static_settings(self) -> dict[str, Any]:
        """The budget options with the contiguity settings the selection uses (`contiguity`), known before
        loading: checked on resume before the LM loads."""
        o = self.options
        gap_cost, position_weight = self.contiguity()
        return {"settings": {"keep": o.keep_ratio, "keep_tokens": o.keep_tokens, "threshold": o.threshold,
                             "step_aware": o.step_aware, "protect": o.protect, "refresh": o.refresh,
                             "gap_cost": gap_cost, "position_weight": position_weight},
                **({"scorer": self.ranks.scorer} if self.ranks is not None else {})}

    def settings(self) -> dict[str, Any]:
        """Also the contiguity settings the selection uses, so that records pruned under other predictor
        defaults are refused on resume, not mixed."""
        gap_cost, position_weight = self.options.contiguity(self.rp)
        return {**super().settings(), "gap_cost": gap_cost, "position_weight": position_weight}

    def contiguity(self) -> tuple[float | None, float | None]:
        """(gap_cost, position_weight) for the records' `settings`: the values the selection uses (the options,
        else the predictor's `prune_defaults`: after `load` the loaded predictor's, before it those of the
        predictor.json the options name, `resume_check.expected_prune_defaults`); for an output written
        before `settings` held them (`legacy_settings`), the options as given (None: not given)."""
        o = self.options
        if self.legacy_settings:
            return o.gap_cost, o.position_weight
        ranker = getattr(self, "rp", None)
        if ranker is None:
            from types import SimpleNamespace

            from .resume_check import expected_prune_defaults

            needed = None in (o.gap_cost, o.position_weight) and not (o.step_aware or o.threshold is not None)
            defaults = (self.ranks.prune_defaults if self.ranks is not None
                        else expected_prune_defaults(self.args) if needed else {})
            ranker = SimpleNamespace(prune_defaults=defaults)
        return o.contiguity(ranker)

    @functools.cached_property
    def legacy_settings(self) -> bool:
        """Whether the existing output (OUT.partial, OUT, or a Ray part) was written before `settings` held the
        contiguity settings used: its `settings.gap_cost` / `position_weight` are null where the option was not
        given. A resumed run then stores that form too (one form per file; the records' top-level gap_cost and
        position_weight hold the values used in both)."""
        from ..jsonl_io import OutputRecords
        from .chain_io import partial_path
        from .parts import part_files

        if getattr(self.args, "out", None) is None or self.streams:  # no output file to resume (jobs built in code)
            return False
        out = Path(self.args.out)
        paths = [p for p in (partial_path(out), out) if p.is_file()]
        if getattr(self.args, "engine", "local") == "ray":
            paths += part_files(Path(self.args.parts_dir or out.with_name(out.name + ".parts")))
        for path in paths:
            try:
                first = next(iter(OutputRecords(path)), None)
            except ValueError:  # a bad line: the resume check names it
                return False
            if first is not None:
                s = first[1].get("settings")
                return isinstance(s, dict) and None in (s.get("gap_cost", 0.0), s.get("position_weight", 0.0))
        return False

    def record(self, chain: Chain) -> dict[str, Any]:
        return self._record(chain, self._prune(chain))

    def _records_together(self, chains: list[Chain]) -> list[dict[str, Any]]:
        """(raises ChainError naming the list index if one chain is unscorable)"""
        return [self._record(c, res) for c, res in zip(chains, self._prune(chains))]

    def _record(self, chain: Chain, res) -> dict[str, Any]:
        """The input record in its own format with the reasoning replaced in place (a chain record: its
        reasoning field; a messages record: the <think> part) and the prune fields."""
        source = getattr(chain, "source", None)
        fields = self._fields(chain, res)
        if source is None or source.layout.format == "chain":
            return self._full_record(chain, fields)
        for k in ("question", "reasoning", "answer"):
            fields.pop(k)
        return self._full_record(chain, fields, base=source.written(res.text))

    @staticmethod
    def _fields(chain: Chain, res) -> dict[str, Any]:
        from ..chain_formats import out_id

        return {"id": out_id(chain), "question": chain.question, "reasoning": res.text, "answer": chain.answer,
                "kept": res.kept, "ratio": res.ratio, "budget": res.budget, "n": res.n,
                "gap_cost": res.gap_cost, "position_weight": res.position_weight,
                "original_reasoning": chain.reasoning,
                "kept_spans": [list(s) for s in res.spans] if res.spans is not None else None,
                "n_protected": res.n_protected}

    def crowded(self, record: dict[str, Any]) -> bool:
        """True for a record whose protected tokens fill >= 90% of its budget (`crowded_by_protection`)."""
        from ..pruning_units import crowded_by_protection

        return crowded_by_protection(int(record.get("n_protected") or 0), record.get("budget"))

    def over_budget(self, record: dict[str, Any]) -> bool:
        budget = record.get("budget")  # as pruning.PruneResult.over_budget, from the record's fields
        return budget is not None and len(record["kept"]) > budget
