#!/usr/bin/env python
"""Train the greedy-rank predictor (the same pipeline as `predictor train`).

What happens, in order (predictor/training.py, `run_training`):
  1. read the greedy-ranked chains (--data, JSONL from `predictor label`), and optionally more chains
     used for training only (--extra-train, e.g. labels of a layout variant);
  2. load the LM they were labeled with (--model; default: the embedded SmolLM2-135M-Instruct);
  3. split chains into train / val / test by a seeded hash of their ids (never by token);
  4. one forward pass per chain -> per-token features (attention per head, the Think-Clearly probe,
     logits, position, lexical), cached on disk; training chains also get pruned states (--states):
     greedy's own order labels the survivors of every intermediate state exactly;
  5. train each regressor (--regressors): LightGBM regression and LambdaRank, a per-token MLP and a
     sequence model (Lightning), early-stopped on validation per-chain Spearman; and the rank
     average of all of them (--no-ensemble to skip);
  6. single-signal baselines (surprisal, entropy, position, attention, best single feature);
  7. select the best regressor on validation; only then score the test chains;
  8. optionally re-score as tokens are removed (--refresh K: K forward passes per chain);
  9. save OUT/predictor (+ predictor/pretrained/smollm2-joint with --ship), OUT/metrics.json,
     and print the table: mean per-chain Spearman with greedy ranks, 95% bootstrap CI over chains.

Example (the README's `make demo`; how the shipped predictor was trained, plus --ship --refresh 2,5,10):
    python train.py --data data/ranked/gsm8k-smollm2-joint.jsonl \\
        --extra-train data/ranked/variant-eos-im_start/gsm8k-smollm2-joint.jsonl --out runs/demo

The shipped predictor's run is a named file (`make train`; options after --config override it):
    python train.py --config configs/smollm2-joint.json [--out runs/mine]
"""
import argparse
import sys

from predictor.commands.train import add_arguments, config_from_args
from predictor.training import run_training

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
add_arguments(parser)
args = parser.parse_args()
try:
    run_training(config_from_args(args))
except (ValueError, FileNotFoundError, RuntimeError) as e:
    sys.exit(f"train.py: error: {e}")
