"""Train rank predictors on greedy-ranked chains and save the best one as a predictor directory.

Steps: read the ranked JSONL; load the LM it was labeled with; split chains (never tokens) into
train/val/test; compute (or load cached) features of every chain, plus pruned states of the
training chains (--states); train each regressor (--regressors), early-stopping and selecting
on validation per-chain Spearman; compare with single-signal baselines; evaluate the selected
predictor on the test chains (optionally with --refresh re-scoring); save OUT/predictor,
OUT/models/KIND, OUT/metrics.json and print a summary table.

    predictor train --data data/ranked/gsm8k-smollm2-joint.jsonl --out runs/train
    predictor train --regressors lgbm-lambdarank --states 0 --refresh 4,10 --out runs/quick
"""
from __future__ import annotations

import argparse

HELP = "train regressors on ranked chains, select on validation, save a predictor directory"


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..training import DEFAULT_DATA, DEFAULT_REGRESSORS

    p.add_argument("--data", default=DEFAULT_DATA, help="ranked JSONL from `predictor label` (default: %(default)s)")
    p.add_argument("--extra-train", default=None, metavar="FILE",
                   help="another ranked JSONL whose chains are used for training only, never split into val/test "
                        "(chains also in --data are dropped from it); full chains only unless --extra-states")
    p.add_argument("--extra-states", action="store_true",
                   help="also train on the pruned --states of the --extra-train chains (one pass per state)")
    p.add_argument("--policy-states", default=None, metavar="FILE",
                   help="state records from `predictor label-states` (a predictor's own pruned states, labeled "
                        "exactly) used as extra training examples; states of val/test chains are ignored")
    p.add_argument("--out", default="runs/train", help="run directory for models, metrics.json (default: %(default)s)")
    p.add_argument("--model", default=None, metavar="M",
                   help="the LM the chains were labeled with: HF dir or hub id (default: the embedded SmolLM2)")
    p.add_argument("--device", default=None, help="LM device: cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--objective", default="joint", choices=("joint", "answer"),
                   help="which labels of the ranked file to train on (default: %(default)s)")
    p.add_argument("--regressors", type=_names, default=DEFAULT_REGRESSORS,
                   help="comma-separated among lgbm-regression, lgbm-lambdarank, mlp, sequence, ridge, ensemble "
                        "(default: the first four; their rank-average ensemble is also tried unless --no-ensemble)")
    p.add_argument("--no-ensemble", action="store_true",
                   help="do not try the rank-average ensemble of the trained regressors")
    p.add_argument("--states", type=_floats, default=(0.0, 0.25, 0.5, 0.75),
                   help="pruned-state fractions used as extra training examples (one forward pass each; "
                        "default: %(default)s; '0' = full chains only)")
    p.add_argument("--groups", type=_names, default=None,
                   help="feature groups among attention, probe, logits, position, lexical, pooled_attention, hidden "
                        "(default: attention,probe,logits,position,lexical; pooled_attention, logits, position and "
                        "lexical only make an LM-agnostic predictor)")
    p.add_argument("--no-per-head", action="store_true", help="only layer/chain aggregates of attention stats")
    p.add_argument("--split", type=_floats, default=(0.7, 0.15, 0.15), metavar="TR,VA,TE",
                   help="train,val,test fractions of chains (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="split and training seed (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N chains of the file")
    p.add_argument("--refresh", type=_ints, default=(), metavar="K,...",
                   help="also evaluate the selected predictor with K forward passes per chain (e.g. 4,10; default: one pass only)")
    p.add_argument("--ship", action="store_true",
                   help="also write the selected predictor to predictor/pretrained/NAME/ (--ship-name)")
    p.add_argument("--ship-name", default="smollm2-joint",
                   help="folder name under predictor/pretrained/ for --ship (default: %(default)s)")
    p.add_argument("--cache", default=None, help="feature cache root (default: $PREDICTOR_CACHE/features)")
    p.add_argument("--threads", type=int, default=None, help="torch / LightGBM CPU threads")
    p.add_argument("--max-epochs", type=int, default=None, help="neural regressors: epoch cap (default 100)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace):
    from ..regressors import REGRESSOR_KINDS
    from ..training import TrainConfig

    bad = [k for k in args.regressors if k not in REGRESSOR_KINDS]
    if bad or not args.regressors:
        raise ValueError(f"unknown regressors {bad}; choose from {', '.join(REGRESSOR_KINDS)}")
    if len(args.split) != 3:
        raise ValueError("--split needs three fractions: train,val,test")
    params = {}
    if args.max_epochs is not None:
        params = {k: {"max_epochs": args.max_epochs} for k in ("mlp", "sequence")}
    return TrainConfig(data=args.data, extra_train=args.extra_train, extra_states=args.extra_states,
                       policy_states=args.policy_states, out=args.out,
                       model=args.model, device=args.device, objective=args.objective,
                       regressors=tuple(args.regressors), states=tuple(args.states),
                       groups=tuple(args.groups) if args.groups else None, per_head=not args.no_per_head,
                       fractions=tuple(args.split), seed=args.seed, limit=args.limit, refresh=tuple(args.refresh),
                       ship=args.ship, ship_name=args.ship_name, cache=args.cache, threads=args.threads, params=params,
                       progress=not args.no_progress, ensemble=not args.no_ensemble)


def run(args: argparse.Namespace) -> int:
    from ..training import run_training

    run_training(config_from_args(args))
    return 0
