"""Arguments shared by several subcommands."""
from __future__ import annotations

import argparse

from ..engines.cli_args import BATCH, add_engine_arguments


def add_lm_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, metavar="M",
                   help="HF model dir or hub id (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--matmul", choices=("onednn", "default"), default="onednn",
                   help="CPU float32 linear layers: onednn (default; greedy steps 1.05-1.10x faster than "
                        "torch's MKL on a quiet AMD EPYC, 1.7x with both cores loaded; differs from it by "
                        "float32 round-off) or default "
                        "(torch's MKL). Ignored on GPU and for other dtypes")


def add_predictor_arguments(p: argparse.ArgumentParser) -> None:
    """--scorer / --predictor / --refresh and the LM options (shared with `predictor prune`)."""
    from ..scorers import DIRECTORY_SCORERS, SCORERS

    g = p.add_mutually_exclusive_group()
    g.add_argument("--scorer", choices=[s for s in SCORERS if s not in DIRECTORY_SCORERS],
                   help="rank with a registered scorer instead of a learned predictor")
    g.add_argument("--predictor", metavar="DIR", help="trained predictor directory or shipped name (smollm2-joint, gemma3-270m-joint, universal; default: the shipped one trained for --model)")
    p.add_argument("--refresh", type=int, default=1, metavar="K",
                   help="forward passes per chain: re-score the survivors K times (default 1)")
    p.add_argument("--no-check-lm", action="store_true",
                   help="use a predictor with an LM other than the one it was trained for")
    p.add_argument("--limit", type=int, default=None, help="process at most this many input chains")
    p.add_argument("--batch", type=int, default=BATCH, metavar="N",
                   help=f"chains read and ranked together, several per forward pass (default {BATCH}; "
                        "the pass size follows a token budget; --engine local only: Ray workers rank "
                        "one chain at a time)")
    add_lm_arguments(p)
    add_engine_arguments(p)


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/N' -> (i, N) with 0 <= i < N."""
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like i/N, got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= i < N")
    return i, n
