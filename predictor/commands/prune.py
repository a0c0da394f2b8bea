"""Prune every chain of a JSONL file to a budget: the drop-in replacement for greedy pruning.

Writes one JSON line per chain: id, question, reasoning (pruned), answer, kept (token indices),
ratio (achieved: kept / n), budget (tokens the budget asked for), n, original_reasoning, chain_hash,
scorer, lm (fingerprint), settings (the budget options, with the gap_cost / position_weight used: the
options, else the predictor's defaults), and the input's other fields.
Exactly one budget: --keep RATIO in (0, 1] (round half up, at least one token), --keep-tokens N, or
--threshold T on the min-max normalized score. Tokens go in whole units (a character split over
several tokens, a <think> tag, a protected number), so the pruned text never holds broken
characters; see `predictor.pruning`. --step-aware removes whole low-scoring reasoning steps (lines)
first. --gap-cost / --position-weight choose contiguity-aware selection (fewer, longer removed
runs; default: the predictor's own setting if it has one, else plain selection by rank; see
docs/pruning.md). --protect numbers keeps whole numbers (sign, currency, separators, decimal point, percent),
math also operators and LaTeX math, code every code block and inline code span, digits every token
holding a digit (several joined by "+": code+numbers); protected tokens are kept
even over the budget (the count of such chains is reported). Streaming, resumable and atomic like
`predictor predict`: a re-run with the same --out resumes, one with other settings is refused.

    predictor prune --in chains.jsonl --keep 0.5 --out pruned.jsonl [--scorer NAME | --predictor DIR]
    predictor prune --in gsm8k.jsonl --keep 0.5 --out pruned.jsonl --protect numbers   # arithmetic: keep whole numbers
"""
from __future__ import annotations

import argparse
from ..engines.record_io import add_format_arguments
from .common import add_predictor_arguments

HELP = "prune the reasoning of a chains file to a budget with a predictor or scorer (resumable)"


def protect_preset(text: str) -> str:
    """--protect: a preset name or several joined by "+" ("code+numbers"), checked by `check_protect`."""
    from ..pruning_units import check_protect

    try:
        check_protect(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", required=True,
                   help="chains JSONL or JSON array (chain or messages records, or --field); - reads standard input")
    p.add_argument("--out", required=True,
                   help="pruned records JSONL in the input's format (resumes if OUT.partial or OUT exists); - (or a "
                        "pipe) streams, no resume")
    add_format_arguments(p)
    p.add_argument("--ranks", default=None, metavar="FILE",
                   help="prune with the ranks of a `predictor predict` output (matched by id and chain hash): no "
                        "forward pass, so several budgets cost one; not with --threshold, --scorer, --predictor")
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
    p.add_argument("--protect", type=protect_preset, default=None, metavar="PRESET",
                   help="never remove whole numbers (numbers), numbers + operators + LaTeX math (math), "
                        "code blocks and inline code (code), or tokens holding a digit (digits); several "
                        "joined by '+', e.g. code+numbers. Arithmetic chains: --protect numbers, so that no "
                        "number loses a digit (\"$20\" -> \"$2\")")
    add_predictor_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ..engines.jobs import PruneJob
    from ..engines.local import run_job

    return run_job(PruneJob(args), args)  # the options are checked before anything loads
