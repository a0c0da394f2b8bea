"""torch's default CPU linear layers (MKL) vs oneDNN, side by side, for the exact greedy labeler.

Part 1 times one linear layer of each of the LM's shapes (512 rows, the labeler's CPU batch) with
both backends, interleaved; part 2 times the first --steps greedy steps of --count chains with the
model as loaded and with `use_onednn_linears`, interleaved, and checks that both paths choose the
same deletions (max |objective difference| over the steps is float32 round-off).

    python benchmarks/cpu_matmul.py --threads 1
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch
from greedy_steps_args import add_greedy_steps_arguments, pick_chains  # beside this script


def _seconds(fn, repeats: int = 3) -> float:
    fn()  # warm-up (oneDNN builds its kernel on first use)
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def linear_table(model, rows: int, repeats: int) -> None:
    from predictor.cpu_matmul import OneDNNLinear

    shapes = sorted({(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)})
    print(f"| linear (in x out), {rows} rows | default GFLOP/s | oneDNN GFLOP/s | oneDNN / default |")
    print("|---|---|---|---|")
    x = torch.randn(rows, max(i for i, _ in shapes))
    for i, o in shapes:
        dense = torch.nn.Linear(i, o, bias=False)
        fast = OneDNNLinear(dense)
        xi = x[:, :i].contiguous()
        d_t, f_t = [], []
        with torch.no_grad():
            for _ in range(repeats):
                d_t.append(_seconds(lambda: dense(xi)))
                f_t.append(_seconds(lambda: fast(xi)))
        flops = 2 * rows * i * o
        d, f = statistics.median(d_t), statistics.median(f_t)
        print(f"| {i} x {o} | {flops / d / 1e9:.0f} | {flops / f / 1e9:.0f} | {d / f:.2f}x |", flush=True)


def greedy_table(lm, chains, steps: int, repeats: int) -> None:
    from predictor.cpu_matmul import use_onednn_linears
    from predictor.greedy import SearchOptions, greedy_prune
    from predictor.lm import LM

    fast = LM(model=copy.deepcopy(lm.model), tokenizer=lm.tokenizer, name=lm.name, fingerprint=lm.fingerprint)
    use_onednn_linears(fast.model)
    print("\n| chain | n | steps | LM tokens | default s | oneDNN s | speed-up | same deletions | max traj diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in chains:
        d_t, f_t = [], []
        for _ in range(repeats):
            d = greedy_prune(lm, c, SearchOptions(max_steps=steps))
            f = greedy_prune(fast, c, SearchOptions(max_steps=steps))
            d_t.append(d.seconds)
            f_t.append(f.seconds)
        diff = float(np.max(np.abs(np.array(d.trajectory) - np.array(f.trajectory))))
        ds, fs = statistics.median(d_t), statistics.median(f_t)
        print(f"| {c.id} | {len(d.ranks)} | {steps} | {d.lm_tokens} | {ds:.1f} | {fs:.1f} | {ds / fs:.2f}x | "
              f"{d.order == f.order} | {diff:.1e} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_greedy_steps_arguments(ap, steps=2)
    ap.add_argument("--rows", type=int, default=512, help="rows of the linear-layer timings")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from predictor.lm import load_lm

    lm = load_lm(args.model, device="cpu")
    print(f"LM {lm.name} ({lm.fingerprint}), {torch.get_num_threads()} thread(s), {lm.dtype}\n")
    linear_table(lm.model, args.rows, args.repeats)
    greedy_table(lm, pick_chains(lm, args), args.steps, args.repeats)


if __name__ == "__main__":
    main()
