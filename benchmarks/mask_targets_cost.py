"""Cost of random-deletion-mask targets against the exact greedy search, on 3 embedded-LM chains.

For the first labeled JOINT chain (data/ranked/gsm8k-smollm2-joint.jsonl) nearest to each of 30, 45
and 60 reasoning tokens: runs the exact greedy search (`greedy_prune`, the labeler's CPU path) and
`mask_targets` with 32 and 64 masks (keep rates 0.4-0.95), on one CPU thread, float32, and prints
wall time, masks/s, LM tokens run, the token ratio greedy / masks, and the per-chain Spearman of
the mask targets' ranks ("regression" with ridge 1, and "difference") with the greedy ranks.
No arguments:

    OMP_NUM_THREADS=1 python benchmarks/mask_targets_cost.py

Measured on the 2-core dev machine with the other core busy labeling (one thread each), so
seconds are inflated by contention; token counts are exact:

| chain | n | method | seconds | masks/s | LM tokens | greedy tokens / these | Spearman vs greedy (regression / difference) |
|---|---|---|---|---|---|---|---|
| gsm8k-train-5240 | 30 | exact greedy (order = stored) | 41.4 | | 4,107 | 1.00 | 1.000 / 1.000 |
| gsm8k-train-5240 | 30 | 32 masks | 9.92 | 3.2 | 1,016 | 4.0 | 0.150 / 0.252 |
| gsm8k-train-5240 | 30 | 64 masks | 15.82 | 4.0 | 1,922 | 2.1 | 0.055 / -0.015 |
| gsm8k-train-105 | 45 | exact greedy (order = stored) | 99.8 | | 12,833 | 1.00 | 1.000 / 1.000 |
| gsm8k-train-105 | 45 | 32 masks | 11.95 | 2.7 | 1,374 | 9.3 | -0.077 / -0.022 |
| gsm8k-train-105 | 45 | 64 masks | 21.64 | 3.0 | 2,631 | 4.9 | 0.123 / 0.011 |
| gsm8k-train-1767 | 60 | exact greedy (order = stored) | 175.1 | | 20,793 | 1.00 | 1.000 / 1.000 |
| gsm8k-train-1767 | 60 | 32 masks | 10.94 | 2.9 | 1,737 | 12.0 | 0.088 / 0.233 |
| gsm8k-train-1767 | 60 | 64 masks | 19.90 | 3.2 | 3,325 | 6.3 | 0.363 / 0.326 |

Both paths ran ~100 LM tokens/s here (the contention, not the method: the masks' forwards are plain
prompt-cached rows), so the token ratio is the cost ratio: 32 masks cost 1/4 (30 tokens) to 1/12
(60 tokens) of the exact search, 64 masks 1/2 to 1/6; the ratio grows ~n^2 with chain length.
How well the targets agree with greedy, from a one-off run (/tmp script, same chains, seed 1; the
first M of 256 masks; regression / difference): gsm8k-train-105 (n=45): M=32 0.15/0.09, 64
0.33/0.31, 128 0.55/0.47, 256 0.46/0.49; gsm8k-train-1767 (n=60): 32 0.30/0.10, 64 0.12/0.13,
128 0.29/0.21, 256 0.35/0.38. Keep rates 0.85-0.98 (64 masks): 0.44 and 0.45. So at 32-64 masks
the targets are very noisy (per-chain Spearman -0.08..0.36); for comparison the exact one-step
leave-one-out scores (greedy's first step, ~n (n + a) tokens, about 64 masks' cost) reach 0.56 on
average (shared/DESIGN.md).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RANKED = ROOT / "data" / "ranked" / "gsm8k-smollm2-joint.jsonl"
LENGTHS = (30, 45, 60)
MASKS = (32, 64)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two rank vectors without ties (Pearson of the ranks)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    torch.set_num_threads(1)
    from predictor.greedy import greedy_prune
    from predictor.lm import load_lm
    from predictor.mask_targets import MaskTargetOptions, mask_targets, per_token_targets, target_ranks

    lm = load_lm(None, device="cpu")
    recs = [json.loads(line) for line in RANKED.read_text().splitlines() if line.strip()]
    picked = []
    for want in LENGTHS:
        picked.append(min(recs, key=lambda r: (abs(len(r["order"]) - want), recs.index(r))))
    print(f"LM {lm.name} ({lm.fingerprint}), {torch.get_num_threads()} thread, float32, CPU")
    print("| chain | n | method | seconds | masks/s | LM tokens | greedy tokens / these | Spearman vs greedy (regression / difference) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in picked:
        chain = {k: r[k] for k in ("id", "question", "reasoning", "answer")}
        t = time.perf_counter()
        g = greedy_prune(lm, chain)
        gs = time.perf_counter() - t
        same = list(g.order) == list(r["order"])
        n = len(g.order)
        print(f"| {r['id']} | {n} | exact greedy (order {'=' if same else '!='} stored) | {gs:.1f} | | "
              f"{g.lm_tokens:,} | 1.00 | 1.000 / 1.000 |")
        for M in MASKS:
            res = mask_targets(lm, chain, MaskTargetOptions(masks=M))
            diff, _ = per_token_targets(res.masks, res.objectives, "difference")
            rho_r = spearman(target_ranks(res.targets), g.ranks)
            rho_d = spearman(target_ranks(diff), g.ranks)
            print(f"| {r['id']} | {n} | {M} masks | {res.seconds:.2f} | {M / res.seconds:.1f} | {res.lm_tokens:,} | "
                  f"{g.lm_tokens / res.lm_tokens:.1f} | {rho_r:.3f} / {rho_d:.3f} |")


if __name__ == "__main__":
    main()
