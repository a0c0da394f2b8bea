"""Arguments shared by several subcommands."""
from __future__ import annotations

import argparse


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


def load_lm_from_args(args: argparse.Namespace, matmul: bool = True):
    """The LM of --model/--device/--threads; with matmul, its linears switched as --matmul says
    (`apply_matmul` does that later for callers that must copy the plain model first)."""
    import torch

    from ..lm import load_lm

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_lm(args.model, device=args.device)
    if matmul:
        apply_matmul(args, lm)
    return lm


def apply_matmul(args: argparse.Namespace, lm) -> None:
    """Run the LM's linear layers through oneDNN when --matmul onednn applies (CPU float32)."""
    from ..cpu_matmul import onednn_applicable, use_onednn_linears

    if args.matmul == "onednn" and onednn_applicable(lm.model):
        use_onednn_linears(lm.model)


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


# the Python names of the pruning options, as the prune / show command lines spell them
PRUNE_OPTION_NAMES = {"keep_ratio": "--keep", "keep_tokens": "--keep-tokens", "threshold": "--threshold",
                      "gap_cost": "--gap-cost", "position_weight": "--position-weight", "step_aware": "--step-aware"}


def with_option_names(err: ValueError, names: dict[str, str] = PRUNE_OPTION_NAMES) -> ValueError:
    """The ValueError of a Python-level check (`pruning.check_budget`, ...) with each option's Python
    name replaced by its command-line name ("keep_ratio must be ..." -> "--keep must be ...")."""
    import re

    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    return ValueError(pattern.sub(lambda m: names[m.group(1)], str(err)))
