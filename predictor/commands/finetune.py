"""Fine-tune the LM itself as the token scorer (LoRA adapters + a bidirectional head; lm_ranker.py).

Same chains, split rule, states and extra training chains as `predictor train`, so its validation and
test numbers compare with the feature predictors'. Saves OUT/predictor (adapters + head as
safetensors, predictor.json), OUT/metrics.json; `predict`, `prune`, `evaluate` and
`RankPredictor.load(DIR)` use the result like any predictor directory.

    predictor finetune --data data/ranked/gsm8k-smollm2-joint.jsonl \\
        --extra-train data/ranked/variant-eos-im_start/gsm8k-smollm2-joint.jsonl --out runs/finetune

Cost: about three forward passes of the LM per training example and epoch; the recorded SmolLM2 run
(902 examples x 2 epochs, --top-layers 0.5) took 51 minutes on one CPU thread shared with three other
jobs, ~1.7 s per example and epoch. It trains on the LM's device (--device).
"""
from __future__ import annotations

import argparse

from .common import add_threads_argument, comma_list, config_defaults, positive_int

HELP = "fine-tune the LM (LoRA + head) as the token scorer; saves a predictor directory"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..finetuning import FinetuneConfig

    d = config_defaults(FinetuneConfig)
    p.add_argument("--data", default=d["data"], help="ranked JSONL (default: %(default)s)")
    p.add_argument("--extra-train", default=None, metavar="FILE",
                   help="ranked JSONL used for training only (full chains; chains in --data are dropped from it)")
    p.add_argument("--out", default=d["out"], help="run directory (default: %(default)s)")
    p.add_argument("--model", default=None, metavar="M", help="the labeling LM (default: the embedded SmolLM2)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--objective", default=d["objective"], choices=("joint", "answer"),
                   help="which labels of --data to learn (default: %(default)s)")
    p.add_argument("--states", type=comma_list(float), default=d["states"],
                   help="pruned greedy states of the training chains used as examples (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d["seed"],
                   help="split and training seed; the split equals `predictor train`'s for the same seed (default 0)")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N chains of --data")
    add_threads_argument(p)
    p.add_argument("--epochs", type=int, default=3, help="epoch cap (default: %(default)s)")
    p.add_argument("--lora-r", type=int, default=8, help="LoRA rank; LoRA alpha is twice it (default: %(default)s)")
    p.add_argument("--top-layers", type=float, default=1.0,
                   help="fraction of the top decoder layers that get adapters; below them no backward pass "
                        "(default: %(default)s)")
    p.add_argument("--lr", type=float, default=5e-4, help="AdamW learning rate (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=4, help="examples per step (default: %(default)s)")
    p.add_argument("--ship", action="store_true", help="also write the predictor to predictor/pretrained/NAME/")
    p.add_argument("--ship-name", default=d["ship_name"], help="(default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ..finetuning import FinetuneConfig, run_finetune

    if not 0 < args.top_layers <= 1:
        raise ValueError(f"--top-layers must be in (0, 1], got {args.top_layers}")
    params = {"max_epochs": args.epochs, "lora_r": args.lora_r, "lora_alpha": 2 * args.lora_r, "lr": args.lr, "top_layers": args.top_layers,
              "batch_size": args.batch_size}
    run_finetune(FinetuneConfig(data=args.data, extra_train=args.extra_train, out=args.out, model=args.model,
                                device=args.device, objective=args.objective, states=tuple(args.states),
                                seed=args.seed, limit=args.limit, threads=args.threads, params=params,
                                ship=args.ship, ship_name=args.ship_name, progress=not args.no_progress))
    return 0
