"""`predictor label`'s per-chain work: the greedy search (exact, strided or approximate) -> ranked record.

See `jobs.ChainJob` for the job contract both engines use; `search_cost` is the progress bar's cost.
"""
from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..chains import Chain
from ..layout import encode_chain
from ..ranked import SEARCH_FIELDS
from .chain_io import ChainList, InPlaceOutput, Skips, check_paths
from .jobs import ChainJob


def search_cost(n: int, answer_len: int, stride: int = 1) -> float:
    """Token positions the greedy search runs through for n reasoning tokens (prefix KV reuse): step
    k scores m = n - k candidates, candidate j re-running the m - j kept tokens after it and the
    answer, so ~sum_m (m^2 / 2 + m * answer_len) = n^3 / 6 + n^2 * answer_len / 2, over `stride`."""
    steps = range(n, 0, -max(1, stride))
    return float(sum(m * m / 2 + m * answer_len for m in steps))


def search_words(s: Mapping[str, Any], proposer: str) -> str:
    """The search that the settings `s` (a ranked record's fields, or a run's) name, as label's options:
    "the exact search", "--stride 2", "--budget 0.3 with <proposer>", "--shortlist 4 with <proposer>
    every 4 steps"; proposer: how to name its proposer ("--proposer none", "proposer 'smollm2-joint'")."""
    stride, budget = int(s.get("stride") or 1), s.get("budget")
    if stride > 1:
        return f"--stride {stride}"
    if s.get("shortlist"):
        every = s.get("propose_every")
        return (f"--shortlist {int(s['shortlist'])} with --proposer none" if every is None
                else f"--shortlist {int(s['shortlist'])} with {proposer} every {every} steps")
    if budget is not None and float(budget) < 1:
        return f"--budget {float(budget):g} with {proposer}"
    return "the exact search"


class _LabelOutput(InPlaceOutput):
    """`InPlaceOutput` that removes OUT again when it created OUT and the run fails before any record."""

    def __init__(self, out: str | Path, *args: Any, **kwargs: Any):
        self.path, self.created = Path(out), not Path(out).exists()
        super().__init__(out, *args, **kwargs)

    def __exit__(self, exc_type, *rest) -> None:
        super().__exit__(exc_type, *rest)
        if exc_type is not None and self.created and self.path.is_file() and self.path.stat().st_size == 0:
            self.path.unlink()


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

    def __init__(self, args: argparse.Namespace):
        from ..objective import check_objective

        super().__init__(args)
        check_objective(self.args.objective)
        if self.args.stride < 1:
            raise ValueError(f"--stride must be >= 1, got {self.args.stride}")
        budget = getattr(self.args, "budget", 1.0)
        if not (0 < budget <= 1):
            raise ValueError(f"--budget must be in (0, 1] (the share of the exact search's cost), got {budget}")
        if budget < 1 and self.args.stride != 1:
            raise ValueError("--budget and --stride are two approximations: choose one")
        self.budget = float(budget)
        self.shortlist = getattr(self.args, "shortlist", None)
        if self.shortlist is not None and (self.budget < 1 or self.args.stride != 1):
            raise ValueError("--shortlist, --budget and --stride are three approximations: choose one")
        wanted = getattr(self.args, "proposer", None)
        if wanted is not None and not str(wanted).strip():
            raise ValueError("--proposer: empty; give a predictor directory, a scorer name, or 'none'")
        if self.shortlist is None and self.budget >= 1 and wanted is not None:
            raise ValueError("--proposer only applies with --shortlist K or --budget F < 1")
        every = getattr(self.args, "propose_every", None)
        if every is not None and self.shortlist is None:
            raise ValueError("--propose-every only applies with --shortlist K (--budget sets its own proposer "
                             "schedule)")
        if every is not None and wanted == "none":
            raise ValueError("--propose-every needs a proposer (not --proposer none)")
        # --shortlist K --proposer none: the K highest priorities only, no proposer runs
        self.propose_every = None if wanted == "none" else 4 if every is None else every
        self.proposer = None
        if getattr(self.args, "max_tokens", None) is not None and self.args.max_tokens < 1:
            raise ValueError(f"--max-tokens must be >= 1, got {self.args.max_tokens}")
        # what this process's searches spent (`summary`): LM tokens, and the exact search's estimate for the
        # same chains (`greedy.approximate.exact_cost_estimate`: what --budget is a share of)
        self.spent, self.exact_estimate, self.counted = 0, 0.0, 0

    def check_paths(self) -> None:
        """Before anything loads, refuse: a missing or directory --in, a directory --out, --out over the
        input (which the in-place writer would append ranked records to); an input that cannot be read
        (its error) or holds no chain; an existing --out that is not a ranked file or was written by
        another search (`static_settings`)."""
        from .record_io import is_stream

        if is_stream(self.args.out):  # "-", a pipe: label's output is a file it appends to and resumes from
            raise ValueError(f"--out {self.args.out}: label appends ranked records to a file it can resume from, "
                             "not to a stream; give a file path")
        check_paths(self.args.inp, self.args.out)
        if not self.read_input(Skips(), whole=True).read:  # a bad line is an error now, before --out exists
            raise ValueError(f"{self.args.inp}: no chain could be read (the file has no non-blank line); "
                             "nothing written")
        match = self.static_settings()
        for where, rec in self._out_records():
            self._check_search(where, rec, match)

    def read_input(self, skips: Skips, whole: bool = False) -> ChainList:
        """Strict (a bad line is an error), then --limit and --shard (unless `whole`: every chain); each
        chain's "file:line" in `where` (for the skip messages)."""
        shard = (0, 1) if whole else getattr(self.args, "shard", (0, 1))
        return ChainList(self.args.inp, None if whole else self.args.limit, shard)

    def _out_records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """("OUT:line", record) of the records already in --out (none if it does not exist), read as the
        resumable writer reads them; ValueError naming OUT:line for a bad line or a record that is not
        a ranked record (a prune or predict output, a chains file)."""
        from ..jsonl_io import OutputRecords
        from ..ranked import not_ranked

        out = self.args.out
        if not Path(out).is_file():
            return
        for lineno, rec in OutputRecords(out, required=()):
            why = not_ranked(rec)
            if why:
                raise ValueError(f"{out}:{lineno}: not a ranked record ({why}); label appends ranked records "
                                 "to --out: choose another --out")
            yield f"{out}:{lineno}", rec

    def _run_proposer(self) -> str:
        """How this run's proposer is named in messages (before `load`: as the options give it)."""
        if self.proposer is not None:
            return f"proposer {self.proposer.name!r}"
        wanted = getattr(self.args, "proposer", None)
        if wanted == "none" or hasattr(self, "lm"):  # loaded without one: --budget's lazy search
            return "--proposer none"
        return f"proposer {wanted!r}" if wanted else "the LM's shipped proposer"

    def _check_search(self, where: str, rec: Mapping[str, Any], match: Mapping[str, Any]) -> None:
        """Refuse (ValueError, in label's options) a finished record of another search than `match`'s."""
        field = next((f for f in SEARCH_FIELDS if f in match and rec.get(f) != match[f]), None)
        if field is None:
            return
        out = self.args.out
        if field == "proposer_fingerprint":
            what = f"{out} was written with another proposer named {rec.get('proposer')!r} (trained differently)"
        else:
            have = search_words(rec, "--proposer none" if rec.get("proposer") is None
                                else f"proposer {rec['proposer']!r}")
            what = f"{out} was written by {have} and this run is {search_words(match, self._run_proposer())}"
        # the stored field first (as every resume refusal names it), then what it means in label's options
        raise ValueError(f"{where}: field '{field}' is {rec.get(field)!r} but this run uses {match[field]!r}, i.e. "
                         f"{what}; labels of two searches cannot be mixed: use another --out, or delete {out} to "
                         "start over")

    def open_output(self) -> InPlaceOutput:
        """OUT itself, appended (one file may hold both objectives, never two LMs, searches or layouts);
        removed again if this run created it and fails before writing a record."""
        self._check_out_after_loading()
        return _LabelOutput(self.args.out, self.key, self.chain_key, match=self.settings(), content=self.record_hash)

    def _check_out_after_loading(self) -> None:
        """Refuse to append to a file whose records were labeled by another LM (`_check_lm`, said before a
        layout that differs because of it), written with another proposer (`settings`), or whose first
        record was encoded differently (e.g. another eos token)."""
        from ..ranked import layout_mismatch

        match = self.settings()
        for k, (where, rec) in enumerate(self._out_records()):
            self._check_lm(where, rec)
            if k == 0:
                diff = layout_mismatch(rec, self.lm.tokenizer, self.lm.max_length)
                if diff:
                    raise ValueError(f"{where}: field {diff} differs from this tokenizer's encoding of the chain; "
                                     "new labels would mix two layouts: write to another file")
            self._check_search(where, rec, match)

    def _check_lm(self, where: str, rec: Mapping[str, Any]) -> None:
        """Refuse (ValueError naming both LMs) a finished record labeled by another LM than the loaded one
        (its field "lm", the LM's fingerprint)."""
        from .setting_words import lm_words, model_option

        have, want = rec.get("lm"), self.lm.fingerprint
        if have == want:
            return
        out = self.args.out
        raise ValueError(f"{where}: field 'lm' is {have!r} but this run uses {want!r}, i.e. {out} was labeled by "
                         f"another LM, {lm_words(have)}, and this run's --model is {lm_words(want, self.lm.name)}; "
                         f"labels of two LMs cannot be mixed: {model_option(have)} to resume it, use another --out, "
                         f"or delete {out} to start over")

    def static_settings(self) -> dict[str, Any]:
        # every approximation's field, None when off: resuming an approximate file with the exact search
        # (whose records lack them) or the other way round is refused, not mixed
        short = self.shortlist is not None
        return {"stride": self.args.stride, "budget": self.budget if self.budget < 1 else None,
                "shortlist": self.shortlist, "propose_every": self.propose_every if short else None}

    def describe(self) -> str:
        how = f"the approximate greedy search (budget {self.budget:g})" if self.budget < 1 else "the greedy search"
        if self.budget < 1:
            how += (f", shortlists proposed by {self.proposer.name!r}" if self.proposer is not None
                    else ", lazy re-scoring without a proposer")
        if self.shortlist is not None:
            how = (f"the refreshed-shortlist greedy search (K {self.shortlist}, proposer {self.proposer.name!r} "
                   f"every {self.propose_every} steps)" if self.proposer is not None else
                   f"the refreshed-shortlist greedy search (K {self.shortlist} highest priorities, no proposer)")
        return f"{how} on {self.lm.name!r}"

    def load(self) -> None:
        from ..cpu_matmul import uses_onednn
        from .cli_args import load_lm_from_args

        self.lm = load_lm_from_args(self.args)
        self.matmul = "onednn" if uses_onednn(self.lm.model) else None
        wanted = getattr(self.args, "proposer", None)
        if (self.shortlist is not None or self.budget < 1) and wanted != "none":
            from ..predictor_dir import PredictorMismatchError, default_predictor_dir
            from ..rank_predictor import RankPredictor

            try:
                self.proposer = RankPredictor.load(wanted or default_predictor_dir(self.lm), lm=self.lm)
            except PredictorMismatchError as e:
                if not (wanted or self.shortlist is not None):
                    return  # --budget on an LM without a shipped predictor: the lazy search, said by describe()
                # the remedies in label's options (not the API's, nor predict's --predictor / --no-check-lm)
                what = (f"--proposer {wanted}" if wanted
                        else "--shortlist K (default proposer: the LM's shipped predictor)")
                raise ValueError(f"{what}: {e.cause} Give a --proposer trained for this LM, or --proposer universal "
                                 "(LM-agnostic) or a baseline scorer name (e.g. surprisal)"
                                 + (", or --proposer none (the lazy search)" if self.shortlist is None
                                    else ", or --proposer none (the K highest priorities only)")
                                 + ".") from None

    def settings(self) -> dict[str, Any]:
        return {"lm": self.lm.fingerprint, **self.static_settings(), **self.proposer_fields()}

    def proposer_fields(self) -> dict[str, Any]:
        """The proposer's name and, for a trained predictor, its fingerprint (two folders of one name
        trained differently do not mix in one file); both None without a proposer."""
        p = self.proposer
        return {"proposer": p.name if p is not None else None,
                "proposer_fingerprint": p.fingerprint if p is not None else None}

    def cost(self, chain: Chain) -> float:
        """The search's cost for `chain` (`search_cost`, token positions; x budget, or the shortlist's
        share), for the progress bar's time estimate; raises ChainError for a chain
        that cannot be labeled or has more reasoning tokens than --max-tokens."""
        from ..layout import MaxTokensError, chain_name

        lay = encode_chain(self.lm.tokenizer, chain, self.lm.max_length)
        limit = getattr(self.args, "max_tokens", None)
        if limit is not None and lay.n > limit:
            raise MaxTokensError(f"{chain_name(chain)}: {lay.n} reasoning tokens, more than --max-tokens {limit}")
        full = search_cost(lay.n, len(lay.answer_ids), self.args.stride)
        if self.shortlist is not None:
            # up to 2K + 2 whole-suffix re-scores a step: about 6 (K + 1) / n of the exact cost (measured
            # with K = 4: 0.73 at n ~ 47, 0.25 at n ~ 117); without a proposer up to K + 2: about
            # 3 (K + 2) / n (K = 4: 0.38 at n ~ 53, 0.18 at n ~ 101)
            per_step = 6 * (self.shortlist + 1) if self.propose_every is not None else 3 * (self.shortlist + 2)
            return min(1.0, per_step / lay.n) * full
        return self.budget * full

    def record(self, chain: Chain) -> dict[str, Any]:
        from ..greedy import SearchOptions, greedy_prune
        from ..ranked import ranked_record

        self.cost(chain)  # the --max-tokens check (encoding is cheap)
        if self.shortlist is not None or self.budget < 1:
            from ..greedy.approximate import approximate_greedy_layout, predictor_proposer, shortlist_options

            proposer = predictor_proposer(self.proposer, chain) if self.proposer is not None else None
            how = ({"options": shortlist_options(self.shortlist, self.propose_every or 1, proposer is not None)}
                   if self.shortlist is not None else {"budget": self.budget})
            res = approximate_greedy_layout(self.lm, encode_chain(self.lm.tokenizer, chain, self.lm.max_length),
                                            self.args.objective, batch_tokens=self.args.batch_tokens,
                                            proposer=proposer, **how)
        else:
            res = greedy_prune(self.lm, chain, SearchOptions(self.args.objective, stride=self.args.stride,
                                                              batch_tokens=self.args.batch_tokens))
        rec = ranked_record(chain, res, self.lm.fingerprint, self.args.objective, self.args.stride,
                            self.lm.tokenizer, device=self.lm.device.type, matmul=self.matmul)
        if self.budget < 1:
            rec.update(budget=self.budget, **self.proposer_fields())
        if self.shortlist is not None:
            rec.update(shortlist=self.shortlist, propose_every=self.propose_every, **self.proposer_fields())
        if res.lm_tokens is not None:
            from ..greedy.approximate import exact_cost_estimate

            self.spent += int(res.lm_tokens)
            self.exact_estimate += exact_cost_estimate(len(rec["reasoning_ids"]), len(rec["answer_ids"]))
            self.counted += 1
        return rec

    def summary(self) -> str | None:
        """The LM tokens this process's searches ran and, for an approximate search, their share of the
        exact search's estimated tokens for the same chains; None when no search counted its tokens."""
        if not self.counted:
            return None
        text = f"{self.command}: the searches ran {self.spent:,} LM tokens on {self.counted} chain(s)"
        if self.budget < 1 or self.shortlist is not None or self.args.stride > 1:
            text += (f": {self.spent / max(self.exact_estimate, 1.0):.2f} x the exact search's estimate for them "
                     f"({self.exact_estimate:,.0f}, `greedy.approximate.exact_cost_estimate`"
                     + ("; --budget is a share of it, and on short chains the search's fixed upkeep can exceed "
                        "--budget)" if self.budget < 1 else ")"))
        return text

    def check_existing(self, record: dict[str, Any], where: str) -> None:
        from ..ranked import layout_mismatch

        self._check_lm(where, record)
        super().check_existing(record, where)
        diff = layout_mismatch(record, self.lm.tokenizer, self.lm.max_length)
        if diff:
            raise ValueError(f"{where}: field {diff} differs from this tokenizer's encoding of the chain; "
                             "new labels would mix two layouts: write to another file")
