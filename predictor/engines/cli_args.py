"""Command-line options that choose and size the engine of `label`, `predict` and `prune`."""
from __future__ import annotations

import argparse


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
