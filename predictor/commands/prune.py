"""Prune every chain of a JSONL file to a budget: the drop-in replacement for greedy pruning.

Writes one JSON line per chain: id, question, reasoning (pruned), answer, kept (token indices),
ratio (achieved: kept / n), budget (tokens the budget asked for), n, original_reasoning, chain_hash,
scorer, lm (fingerprint), settings (the budget options), and the input's other fields.
Exactly one budget: --keep RATIO in (0, 1] (round half up, at least one token), --keep-tokens N, or
--threshold T on the min-max normalized score. Tokens go in whole units (a character split over
several tokens, a <think> tag, a protected number), so the pruned text never holds broken
characters; see `predictor.pruning`. --step-aware removes whole low-scoring reasoning steps (lines)
first. --gap-cost / --position-weight choose contiguity-aware selection (fewer, longer removed
runs; default: the predictor's own setting if it has one, else plain selection by rank; see
docs/pruning.md). --protect numbers keeps whole numbers (sign, currency, separators, decimal point, percent),
math also operators and LaTeX math, digits every token holding a digit; protected tokens are kept
even over the budget (the count of such chains is reported). Streaming, resumable and atomic like
`predictor predict`: a re-run with the same --out resumes, one with other settings is refused.

    predictor prune --in chains.jsonl --keep 0.5 --out pruned.jsonl [--scorer NAME | --predictor DIR]
"""
from __future__ import annotations

import argparse
from typing import Any

from .common import with_option_names
from .predict import add_predictor_arguments, run_stream

HELP = "prune the reasoning of a chains file to a budget with a predictor or scorer (resumable)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", required=True, help="chains JSONL (id, question, reasoning, answer)")
    p.add_argument("--out", required=True, help="pruned chains JSONL (resumes if OUT.partial or OUT exists)")
    b = p.add_mutually_exclusive_group(required=True)
    b.add_argument("--keep", type=float, metavar="RATIO", help="fraction of reasoning tokens to keep, in (0, 1]")
    b.add_argument("--keep-tokens", type=int, metavar="N", help="reasoning tokens to keep per chain")
    b.add_argument("--threshold", type=float, metavar="T",
                   help="keep tokens whose min-max normalized score is >= T, in [0, 1] (with their whole "
                        "units, and every protected token)")
    p.add_argument("--step-aware", action="store_true", help="remove whole low-scoring reasoning steps first")
    p.add_argument("--gap-cost", type=float, default=None, metavar="C",
                   help="contiguity-aware selection for --keep / --keep-tokens: each removed run of tokens "
                        "costs C (in units of one token's normalized rank), so the kept text has fewer, "
                        "longer gaps; 0 = plain selection by rank. Default: the predictor's own setting "
                        "(the 'prune' entry of its predictor.json), else 0; 0 for scorers. Not with "
                        "--step-aware or --threshold (docs/pruning.md)")
    p.add_argument("--position-weight", type=float, default=None, metavar="W",
                   help="in [0, 1]: blend each token's relative position into its value before the "
                        "contiguity-aware selection (0: rank only; 1 keeps a contiguous suffix). Default: "
                        "the predictor's own setting, else 0; 0 for scorers")
    p.add_argument("--protect", choices=["numbers", "math", "digits"], default=None,
                   help="never remove whole numbers (numbers), numbers + operators + LaTeX math (math), "
                        "or tokens holding a digit (digits)")
    add_predictor_arguments(p)


def prune_records(rp, chains: list, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One record per chain, the chains ranked together (raises ChainError naming the list index if
    one is unscorable)."""
    results = rp.prune(chains, args.keep, **_options(args))
    return [_fields(c, res) for c, res in zip(chains, results)]


def prune_record(rp, chain, args: argparse.Namespace) -> dict[str, Any]:
    """The record of one chain (a ChainError names the chain, not a list index)."""
    return _fields(chain, rp.prune(chain, args.keep, **_options(args)))


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"keep_tokens": args.keep_tokens, "threshold": args.threshold, "protect": args.protect,
            "step_aware": args.step_aware, "refresh": args.refresh,
            "gap_cost": getattr(args, "gap_cost", None), "position_weight": getattr(args, "position_weight", None)}


def _fields(chain, res) -> dict[str, Any]:
    return {
        "id": chain.id, "question": chain.question, "reasoning": res.text, "answer": chain.answer,
        "kept": res.kept, "ratio": res.ratio, "budget": res.budget, "n": res.n,
        "gap_cost": res.gap_cost, "position_weight": res.position_weight,
        "original_reasoning": chain.reasoning,
    }  # extra input fields, chain_hash, scorer, lm and settings: added by engines.jobs.PruneJob


def run(args: argparse.Namespace) -> int:
    from ..pruning import check_budget, check_contiguity

    try:  # fail before loading anything
        check_budget(args.keep, args.keep_tokens, args.threshold)
        check_contiguity(args.gap_cost, args.position_weight, args.step_aware, args.threshold)
    except ValueError as e:
        raise with_option_names(e) from None
    from ..engines.jobs import PruneJob

    return run_stream(args, PruneJob(args), "prune")
