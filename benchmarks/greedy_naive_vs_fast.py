"""The fast labeler against a naive exact oracle on short chains, side by side, same orders.

naive: every candidate deletion scored by a full forward pass of prompt + candidate + answer, batches of
32 equal-length sequences, torch's default (MKL) matmuls, full logits. Labeler paths (`greedy.py`, linear
layers through oneDNN): packed + suffix reuse (each candidate's suffix carried to the next step,
`greedy/suffix_reuse.py`, every candidate scored completely); packed + suffix reuse + bound (the CPU
default: a candidate stops being scored once its upper bound falls below the best complete score);
with --fresh also packed, each state fresh (a block's suffixes packed into one sequence over one shared
prefix cache, every state scored from scratch); with --rows also one padded row per candidate with a
per-row prefix copy (the CUDA layout). Each path runs one greedy step first, untimed (warm-up). Also a plain batched forward
(batch 32, rows as long as the chain's full sequence, no cache, MKL) for the LM's throughput here.

For each --threads value and each chain: the whole search (or the first --steps steps), runs of each
method interleaved; medians of wall and CPU seconds, LM tokens (the labeler's: each state forward plus
every candidate's newly run suffix inputs; the naive's: every candidate's full sequence), LM tokens per
wall second, the naive's wall time over each path's, and whether the deletion orders equal the stored labels.

    python benchmarks/greedy_naive_vs_fast.py --threads 1,2 --repeats 3 --naive-repeats 1
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch


def naive_greedy(model, lay, steps: int | None, batch: int = 32) -> tuple[list[int], int]:
    """(deletion order of the first `steps` steps, LM tokens) of the plain batched JOINT search."""
    p, a = len(lay.prompt_ids), len(lay.answer_ids)
    kept, order, tokens = list(range(lay.n)), [], 0
    while kept and (steps is None or len(order) < steps):
        seqs = [lay.sequence(kept[:j] + kept[j + 1:]) for j in range(len(kept))]
        scores = []
        for s in range(0, len(seqs), batch):
            x = torch.tensor(seqs[s:s + batch])
            lp = torch.log_softmax(model(input_ids=x, use_cache=False).logits.float()[:, :-1], dim=-1)
            tok = lp.gather(2, x[:, 1:, None])[..., 0]
            scores += tok[:, p - 1:].double().sum(1).tolist()
            tokens += x.numel()
        best = int(np.argsort(-np.asarray(scores), kind="stable")[0])
        order.append(kept.pop(best))
    return order, tokens


def plain_forward_rate(model, width: int, vocab: int, batch: int = 32) -> float:
    """LM tokens per second of one cache-free batched forward with full logits."""
    x = torch.randint(0, vocab, (batch, width))
    t = time.perf_counter()
    with torch.no_grad():
        torch.log_softmax(model(input_ids=x, use_cache=False).logits.float(), dim=-1)
    return x.numel() / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/ranked/gsm8k-smollm2-joint.jsonl", help="ranked JSONL (JOINT labels)")
    ap.add_argument("--lengths", default="27,36,45", help="the first chain with each reasoning length")
    ap.add_argument("--steps", type=int, default=0, help="greedy steps per chain (default 0: the whole search)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each labeler path (medians)")
    ap.add_argument("--naive-repeats", type=int, default=1,
                    help="runs of the naive oracle (default 1: a whole naive search of a 45-token chain takes ~10 min)")
    ap.add_argument("--threads", default="1", help="comma-separated torch thread counts")
    ap.add_argument("--rows", action="store_true", help="also time the padded-rows layout (the CUDA default)")
    ap.add_argument("--fresh", action="store_true", help="also time the packed layout scoring each state from scratch")
    args = ap.parse_args()

    from predictor.cpu_matmul import use_onednn_linears
    from predictor.greedy import SearchOptions, greedy_layout
    from predictor.layout import Layout
    from predictor.lm import load_lm
    from predictor.ranked import read_ranked

    lm = load_lm()
    fast_lm = copy.copy(lm)
    fast_lm.model = copy.deepcopy(lm.model)
    use_onednn_linears(fast_lm.model)
    vocab = lm.model.config.get_text_config().vocab_size
    records = read_ranked(args.data, objective="joint")
    picked = [next(r for r in records if len(r["ranks"]) == int(n)) for n in args.lengths.split(",")]
    steps = args.steps or None
    print(f"LM {lm.name}; steps per chain: {args.steps or 'all'}; labeler: medians of {args.repeats} runs, "
          f"naive: {'median of ' if args.naive_repeats > 1 else ''}{args.naive_repeats} run(s)")
    print("| threads | chain | n | method | wall s | CPU s | LM tokens | LM tok/s (wall) | naive wall / this wall | same order |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    naive = "naive batch-32 (MKL)"
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for rec in picked:
            lay = Layout(rec["prompt_ids"], rec["reasoning_ids"], rec["answer_ids"])

            def fast(**kw):
                r = greedy_layout(fast_lm, lay, SearchOptions(max_steps=steps, **kw))
                return r.order, r.lm_tokens

            runs = {naive: lambda: naive_greedy(lm.model, lay, steps)}
            if args.rows:
                runs["fast, padded rows"] = lambda: fast(pack=False)
            if args.fresh:
                runs["fast, packed, each state fresh"] = lambda: fast(pack=True, reuse=False, bound=False)
            runs["fast, packed + suffix reuse"] = lambda: fast(bound=False)
            runs["fast, packed + suffix reuse + bound (default)"] = lambda: fast()
            greedy_layout(fast_lm, lay, SearchOptions(max_steps=1))  # warm-up
            naive_greedy(lm.model, lay, 1)
            walls = {k: [] for k in runs}
            cpus = {k: [] for k in runs}
            out = {}
            for rep in range(max(args.repeats, args.naive_repeats)):
                for name, fn in runs.items():
                    if rep >= (args.naive_repeats if name == naive else args.repeats):
                        continue
                    w, c = time.perf_counter(), time.process_time()
                    out[name] = fn()
                    walls[name].append(time.perf_counter() - w)
                    cpus[name].append(time.process_time() - c)
            want = rec["order"][: len(out[naive][0])]
            naive_wall = statistics.median(walls[naive])
            for name in runs:
                order, tokens = out[name]
                w, c = statistics.median(walls[name]), statistics.median(cpus[name])
                print(f"| {threads} | {rec['id']} | {lay.n} | {name} | {w:.1f} | {c:.1f} | {tokens} | {tokens / w:.0f} | "
                      f"{naive_wall / w:.2f} | {'yes' if order == want else 'NO'} |", flush=True)
            rate = statistics.median(plain_forward_rate(lm.model, lay.total, vocab) for _ in range(3))
            print(f"| {threads} | {rec['id']} | {lay.n} | plain batched forward (batch 32 x {lay.total}, MKL) | | | | "
                  f"{rate:.0f} | | |", flush=True)


if __name__ == "__main__":
    main()
