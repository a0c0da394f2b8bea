"""Command-line options that choose and size the engine of `label`, `predict` and `prune`, and the LM and
predictor that the options of every command name (loaded once per process)."""
from __future__ import annotations

import argparse

BATCH = 32  # chains that predict / prune read and rank together (--batch)


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine", "--engine ray runs the same per-chain work on a Ray cluster "
                                       "(extra predictor[ray]; docs/ray.md)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: one process, one chain at a time (default); ray: Ray Data actors, one LM each")
    g.add_argument("--address", default=None,
                   help="--engine ray: address of a running cluster (`ray start --head` prints it; 'auto' = the "
                        "one on this node). Default: start a local cluster for this run")
    g.add_argument("--workers", type=int, default=None,
                   help="--engine ray: actors, each holding one copy of the LM (default: one per GPU of the "
                        "cluster; without GPUs, one per --cpus-per-worker CPUs)")
    g.add_argument("--gpus-per-worker", type=float, default=None,
                   help="--engine ray: GPUs reserved per actor (default: 1 if the cluster has GPUs, else 0)")
    g.add_argument("--cpus-per-worker", type=float, default=1.0,
                   help="--engine ray: CPUs reserved per actor, also its torch threads unless --threads (default 1)")
    g.add_argument("--parts-dir", default=None,
                   help="--engine ray: folder of finished-record parts before the final merge (default: OUT.parts)")


def load_lm_from_args(args: argparse.Namespace, matmul: bool = True):
    """The LM of --model/--device/--threads (`runtime.load_lm_on`); with matmul, its linears switched as
    --matmul says (`apply_matmul` does that later for callers that must copy the plain model first)."""
    from ..runtime import load_lm_on

    return load_lm_on(args.model, args.device, args.threads, getattr(args, "matmul", None) if matmul else None)


def apply_matmul(args: argparse.Namespace, lm) -> None:
    """Run the LM's linear layers through oneDNN when --matmul onednn applies (CPU float32)."""
    from ..runtime import use_matmul

    use_matmul(lm, getattr(args, "matmul", None))


def load_predictor_from_args(args: argparse.Namespace):
    """The RankPredictor the arguments name (the LM is loaded once, threads settled by `runtime`)."""
    from ..rank_predictor import RankPredictor
    from ..runtime import load_lm_on, set_threads

    set_threads(args.threads)
    lm = load_lm_on(args.model, args.device, args.threads) if (args.model or args.scorer) else None
    return RankPredictor.load(args.scorer or args.predictor, lm=lm, device=args.device,
                              check_lm=not args.no_check_lm)


# the Python names of the pruning options, as the prune / show command lines spell them
PRUNE_OPTION_NAMES = {"keep_ratio": "--keep", "keep_tokens": "--keep-tokens", "threshold": "--threshold",
                      "gap_cost": "--gap-cost", "position_weight": "--position-weight", "step_aware": "--step-aware"}


def with_option_names(err: ValueError, names: dict[str, str] = PRUNE_OPTION_NAMES) -> ValueError:
    """The ValueError of a Python-level check (`prune_options.check_budget`, ...) with each option's Python
    name replaced by its command-line name ("keep_ratio must be ..." -> "--keep must be ...")."""
    import re

    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    return ValueError(pattern.sub(lambda m: names[m.group(1)], str(err)))


def prune_options(**options):
    """`pruning.PruneOptions(**options)`, its ValueError naming the command-line options (--keep, ...)."""
    from ..pruning import PruneOptions

    try:
        return PruneOptions(**options)
    except ValueError as e:
        raise with_option_names(e) from None
