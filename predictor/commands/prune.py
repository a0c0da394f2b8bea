"""Prune every chain of a JSONL file to a budget: the drop-in replacement for greedy pruning.

Writes one JSON line per chain: id, question, reasoning (pruned), answer, kept (token indices),
ratio (kept / n), n, original_reasoning, scorer, lm (fingerprint) and settings (the budget options).
Exactly one budget: --keep RATIO in (0, 1] (round half up, at least one token), --keep-tokens N, or
--threshold T on the min-max normalized score. --step-aware removes whole low-scoring reasoning steps
(lines) first; --protect digits keeps every token holding a digit. Streaming, resumable and atomic
like `predictor predict`: a re-run with the same --out resumes, one with other settings is refused.

    predictor prune --in chains.jsonl --keep 0.5 --out pruned.jsonl [--scorer NAME | --predictor DIR]
"""
from __future__ import annotations

import argparse
from typing import Any

from .predict import add_predictor_arguments, run_stream

HELP = "prune the reasoning of a chains file to a budget with a predictor or scorer (resumable)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", required=True, help="chains JSONL (id, question, reasoning, answer)")
    p.add_argument("--out", required=True, help="pruned chains JSONL (resumes if OUT.partial or OUT exists)")
    b = p.add_mutually_exclusive_group(required=True)
    b.add_argument("--keep", type=float, metavar="RATIO", help="fraction of reasoning tokens to keep, in (0, 1]")
    b.add_argument("--keep-tokens", type=int, metavar="N", help="reasoning tokens to keep per chain")
    b.add_argument("--threshold", type=float, metavar="T",
                   help="keep tokens whose min-max normalized score is >= T, in [0, 1]")
    p.add_argument("--step-aware", action="store_true", help="remove whole low-scoring reasoning steps first")
    p.add_argument("--protect", choices=["digits", "math"], default=None,
                   help="never remove tokens with digits (or digits and operators)")
    add_predictor_arguments(p)


def prune_records(rp, chains: list, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One record per chain, the chains ranked together."""
    results = rp.prune(chains, args.keep, keep_tokens=args.keep_tokens, threshold=args.threshold,
                       protect=args.protect, step_aware=args.step_aware, refresh=args.refresh)
    return [{
        "id": c.id, "question": c.question, "reasoning": res.text, "answer": c.answer,
        "kept": res.kept, "ratio": res.ratio, "n": res.n, "original_reasoning": c.reasoning,
    } for c, res in zip(chains, results)]  # scorer, lm and settings: added by run_stream (checked on resume)


def run(args: argparse.Namespace) -> int:
    from ..pruning import check_budget

    check_budget(args.keep, args.keep_tokens, args.threshold)  # fail before loading anything
    settings = {"settings": {"keep": args.keep, "keep_tokens": args.keep_tokens, "threshold": args.threshold,
                             "step_aware": args.step_aware, "protect": args.protect, "refresh": args.refresh}}
    return run_stream(args, lambda rp, cs: prune_records(rp, cs, args), "prune", settings=lambda rp: settings)
