"""Convert GSM8K records into a chains JSONL file (reasoning = solution without <<calc>> notes).

Optionally keep only chains whose reasoning has between --min-tokens and --max-tokens tokens under
the LM's tokenizer, and shuffle them with a fixed seed, so that labeling any prefix of the output
gives an unbiased sample.
"""
from __future__ import annotations

import argparse
import random

HELP = "convert GSM8K JSONL to a chains file (filter by length, seeded shuffle)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", required=True, help="GSM8K JSONL (question, answer with '#### x')")
    p.add_argument("--out", required=True, help="chains JSONL to write (atomically)")
    p.add_argument("--prefix", default="gsm8k-train", help="id prefix; ids are PREFIX-<row> (default: %(default)s)")
    p.add_argument("--min-tokens", type=int, default=None, help="minimum reasoning tokens")
    p.add_argument("--max-tokens", type=int, default=None, help="maximum reasoning tokens")
    p.add_argument("--seed", type=int, default=None, help="shuffle with this seed (default: keep file order)")
    p.add_argument("--model", default=None, help="tokenizer's LM for the length filter (default: embedded)")


def run(args: argparse.Namespace) -> int:
    from ..chains import read_gsm8k
    from ..jsonl_io import atomic_write_jsonl

    chains = read_gsm8k(args.inp, args.prefix)
    if args.min_tokens is not None or args.max_tokens is not None:
        from transformers import AutoTokenizer

        from ..lm import _resolve

        tok = AutoTokenizer.from_pretrained(_resolve(args.model)[1])
        lo, hi = args.min_tokens or 0, args.max_tokens or 1 << 30
        lens = [len(tok(c.reasoning, add_special_tokens=False)["input_ids"]) for c in chains]
        chains = [c for c, n in zip(chains, lens) if lo <= n <= hi]
    if args.seed is not None:
        random.Random(args.seed).shuffle(chains)
    atomic_write_jsonl(args.out, (c.to_dict() for c in chains))
    print(f"wrote {len(chains)} chains to {args.out}")
    return 0
