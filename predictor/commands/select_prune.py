"""Choose `prune`'s contiguity settings for a trained predictor on its validation chains.

Scores a grid of (gap_cost, position_weight) settings of contiguity-aware selection
(`predictor.contiguous_selection`) on the predictor's validation split of its ranked data: the
share of the random-to-greedy JOINT gap that pruned chains recover at keep 0.9 / 0.7 / 0.5 / 0.3
(`predictor.evaluation.prune_selection`). Selects the best mean; --test then scores the test split
with the selected, plain (0, 0) and suffix (0, 1) settings (report only); --write stores the choice
in the predictor's predictor.json, where `prune` reads its defaults. Resumable (OUT/objectives.jsonl);
writes OUT/summary.json and OUT/summary.md and prints the tables.

    predictor select-prune --data data/ranked/gsm8k-smollm2-joint.jsonl --test --write   # the shipped one
    predictor select-prune --predictor runs/train/predictor --data my-ranked.jsonl --write
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import add_threads_argument, comma_list

_floats = comma_list(float)

HELP = "choose prune's contiguity settings (gap cost, position weight) on a predictor's validation chains"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..evaluation.prune_selection import GAP_COSTS, POSITION_WEIGHTS

    p.add_argument("--data", default="data/ranked/gsm8k-smollm2-joint.jsonl",
                   help="ranked JOINT chains the predictor was trained on (its stored split picks the chains; "
                        "default: %(default)s)")
    p.add_argument("--predictor", default=None, help="predictor directory (default: the shipped one)")
    p.add_argument("--out", default="runs/select-prune", help="folder for objectives.jsonl and the summary "
                                                              "(default: %(default)s)")
    p.add_argument("--test", action="store_true", help="after selecting, also score the test split (report only)")
    p.add_argument("--write", action="store_true", help="store the selection in the predictor's predictor.json")
    p.add_argument("--gap-costs", type=_floats, default=list(GAP_COSTS),
                   help="comma-separated gap costs to try (default: %(default)s)")
    p.add_argument("--position-weights", type=_floats, default=list(POSITION_WEIGHTS),
                   help="comma-separated position weights in [0, 1] to try (default: %(default)s)")
    p.add_argument("--random-draws", type=int, default=3, help="random kept sets per chain and ratio: their mean "
                                                               "is the baseline (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random kept sets (default: %(default)s)")
    add_threads_argument(p)


def run(args: argparse.Namespace) -> int:
    from ..pruning import check_contiguity

    for g in args.gap_costs:
        check_contiguity(gap_cost=g)
    for w in args.position_weights:
        check_contiguity(position_weight=w)
    if args.random_draws < 1:
        print("--random-draws must be >= 1", file=sys.stderr)
        return 2
    from ..evaluation.prune_selection import render_markdown, select_prune, write_defaults
    from ..jsonl_io import atomic_write_text
    from ..rank_predictor import RankPredictor
    from ..ranked import read_ranked
    from ..runtime import set_threads

    set_threads(args.threads)
    records = read_ranked(args.data, objective="joint")
    rp = RankPredictor.load(args.predictor)
    split = (getattr(rp.scorer, "metadata", None) or {}).get("split")
    if not split:
        print(f"{args.predictor or 'the shipped predictor'}: predictor.json stores no split; select-prune needs a "
              "trained predictor", file=sys.stderr)
        return 2
    configs = [(g, w) for g in args.gap_costs for w in args.position_weights]
    summary = select_prune(rp, records, split, args.out, configs, args.test, args.random_draws, args.seed)
    if args.write:
        write_defaults(args.predictor, summary)
    out = Path(args.out)
    md = render_markdown(summary)
    atomic_write_text(out / "summary.json", json.dumps(summary))
    atomic_write_text(out / "summary.md", md)
    print(md, end="")
    return 0
