"""Write one split of a chain queue, shortest reasoning first: the labeling queues of the long chains.

    python data/split_queue.py --in data/chains/gsm8k-train-100-250.jsonl --split train \
        --out runs/label/long.train.queue.jsonl

The split is `predictor.splits.split_ids` (seed 0, 0.7 / 0.15 / 0.15, by chain id), the split the
training and evaluation code assigns to the same chains; the order is by reasoning tokens under the
embedded LM's tokenizer (ties keep the input order), so a labeler working down the queue finishes
the cheap chains first. `--exclude` drops ids already present in ranked files (e.g. chains labeled
exactly elsewhere).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from predictor.chains import read_chains  # noqa: E402
from predictor.jsonl_io import atomic_write_jsonl  # noqa: E402
from predictor.splits import SPLITS, split_ids  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--in", dest="inp", required=True, help="chains JSONL (id, question, reasoning, answer)")
    p.add_argument("--split", required=True, choices=SPLITS, help="which split to keep")
    p.add_argument("--out", required=True, help="queue JSONL to write (atomically)")
    p.add_argument("--exclude", nargs="*", default=[], help="ranked or chain JSONL files whose ids to drop")
    p.add_argument("--model", default=None, help="tokenizer's LM (default: the embedded SmolLM2)")
    args = p.parse_args(argv)

    from transformers import AutoTokenizer

    from predictor.lm import _resolve

    chains = read_chains(args.inp)
    keep = set(split_ids([c.id for c in chains])[args.split])
    drop: set[str] = set()
    for path in args.exclude:
        with open(path) as f:
            drop.update(json.loads(line)["id"] for line in f if line.strip())
    chains = [c for c in chains if c.id in keep and c.id not in drop]
    tok = AutoTokenizer.from_pretrained(_resolve(args.model)[1])
    lens = [len(tok(c.reasoning, add_special_tokens=False)["input_ids"]) for c in chains]
    order = sorted(range(len(chains)), key=lambda i: lens[i])
    atomic_write_jsonl(args.out, (chains[i].to_dict() for i in order))
    if order:
        print(f"wrote {len(order)} {args.split} chains ({lens[order[0]]}-{lens[order[-1]]} reasoning "
              f"tokens) to {args.out}")
    else:
        print(f"wrote 0 chains to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
