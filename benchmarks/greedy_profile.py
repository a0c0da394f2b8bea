"""Where a whole greedy search of a short chain spends its time (all steps, not only the first).

Runs the fast labeler on one 30-40-token chain under torch.profiler and prints the operators by
self CPU time, grouped: matrix products (linear / matmul / bmm / addmm / mm), attention kernels,
copies (cat / copy_ / contiguous / expand materialization), masks, and the rest.

    python benchmarks/greedy_profile.py --threads 1 [--length 32] [--fresh | --no-bound | --rows]

With --by-size, no profiler: each block forward of the packed scorer is timed, and the forwards are
grouped by their number of inputs (small follow-up waves vs large first waves).
"""
from __future__ import annotations

import argparse
import time

import torch

GROUPS = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear",
                        "onednn", "mkldnn", "aten::_mkldnn"),
    "attention kernel": ("scaled_dot_product", "flash_attention", "_efficient_attention", "aten::_softmax"),
    "copies": ("aten::cat", "aten::copy_", "aten::clone", "aten::contiguous", "aten::index", "aten::_to_copy",
               "aten::repeat", "aten::expand"),
    "masks": ("aten::where", "aten::logical", "aten::bitwise", "aten::ge", "aten::le", "aten::lt", "aten::gt",
              "aten::eq", "aten::__and__", "aten::__or__"),
}


def group_of(name: str) -> str:
    for g, keys in GROUPS.items():
        if any(k in name for k in keys):
            return g
    return "other ops"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/ranked/gsm8k-smollm2-joint.jsonl")
    ap.add_argument("--length", type=int, default=32, help="first chain with this many reasoning tokens")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--matmul", choices=("onednn", "default"), default="onednn")
    ap.add_argument("--steps", type=int, default=None, help="profile only the first S steps (default: all)")
    ap.add_argument("--rows", action="store_true",
                    help="score candidates as one padded row each with a per-row prefix cache (the old layout) "
                         "instead of packed into one sequence")
    ap.add_argument("--fresh", action="store_true",
                    help="score every state from scratch (no suffix reuse across steps, no bound; the packed layout)")
    ap.add_argument("--no-bound", action="store_true",
                    help="score every candidate completely (suffix reuse on, the bound off)")
    ap.add_argument("--by-size", action="store_true",
                    help="time each packed block forward (no profiler) and group them by input count")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from torch.profiler import ProfilerActivity, profile

    from predictor.cpu_matmul import onednn_applicable, use_onednn_linears
    from predictor.greedy import SearchOptions, greedy_prune
    from predictor.lm import load_lm
    from predictor.ranked import read_ranked, record_chain

    lm = load_lm()
    if args.matmul == "onednn" and onednn_applicable(lm.model):
        use_onednn_linears(lm.model)
    rec = next(r for r in read_ranked(args.data, objective="joint") if len(r["ranks"]) == args.length)
    chain = record_chain(rec)
    pack = not args.rows
    reuse = False if (args.rows or args.fresh) else None
    bound = False if (args.rows or args.fresh or args.no_bound) else None
    greedy_prune(lm, chain, SearchOptions(max_steps=1, pack=pack, reuse=reuse, bound=bound))  # warm-up
    if args.by_size:
        by_size(lm, rec, chain, args, pack, reuse, bound)
        return
    t = time.perf_counter()
    cpu = time.process_time()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        res = greedy_prune(lm, chain, SearchOptions(max_steps=args.steps, pack=pack, reuse=reuse, bound=bound))
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    assert res.order == rec["order"][: len(res.order)], "the profiled search's order differs from the stored labels"
    print(f"{rec['id']}: n={args.length}, {len(res.order)} steps, {res.lm_tokens} LM tokens, {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU under the profiler "
          f"({res.lm_tokens / wall:.0f} tok/s), {torch.get_num_threads()} thread(s), matmul {args.matmul}, {'rows' if args.rows else 'packed, fresh' if args.fresh else 'packed + suffix reuse' if args.no_bound else 'packed + suffix reuse + bound'}")
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    by_group: dict[str, float] = {}
    for e in events:
        by_group[group_of(e.key)] = by_group.get(group_of(e.key), 0.0) + e.self_cpu_time_total
    print("| group | self CPU s | share |\n|---|---|---|")
    for g, v in sorted(by_group.items(), key=lambda kv: -kv[1]):
        print(f"| {g} | {v / 1e6:.1f} | {v / total:.1%} |")
    print(events.table(sort_by="self_cpu_time_total", row_limit=20))


def by_size(lm, rec, chain, args, pack, reuse, bound) -> None:
    """Time every packed block forward of one search; print them grouped by input count."""
    import predictor.greedy.suffix_reuse as gsr
    from predictor.greedy import SearchOptions, greedy_prune

    timed: list[tuple[int, float]] = []
    block = gsr.SuffixReuseScorer._block

    def timed_block(self, seq, m, cands, done, new, *rest):
        t0 = time.perf_counter()
        out = block(self, seq, m, cands, done, new, *rest)
        timed.append((sum(new), time.perf_counter() - t0))
        return out

    gsr.SuffixReuseScorer._block = timed_block
    try:
        t = time.perf_counter()
        res = greedy_prune(lm, chain, SearchOptions(max_steps=args.steps, pack=pack, reuse=reuse, bound=bound))
        wall = time.perf_counter() - t
    finally:
        gsr.SuffixReuseScorer._block = block
    assert res.order == rec["order"][: len(res.order)], "the timed search's order differs from the stored labels"
    print(f"{rec['id']}: n={args.length}, {len(res.order)} steps, {res.lm_tokens} LM tokens, {wall:.1f} s wall, "
          f"{len(timed)} block forwards ({sum(s for _, s in timed):.1f} s), {torch.get_num_threads()} thread(s)")
    print("| inputs per forward | forwards | inputs | seconds | inputs/s | ms per forward |\n|---|---|---|---|---|---|")
    for lo, hi in ((1, 16), (16, 64), (64, 128), (128, 256), (256, None)):
        rows = [(n, s) for n, s in timed if n >= lo and (hi is None or n < hi)]
        if rows:
            n, sec = sum(r[0] for r in rows), sum(r[1] for r in rows)
            print(f"| {lo}-{hi - 1 if hi else ''} | {len(rows)} | {n} | {sec:.2f} | {n / sec:.0f} | {1e3 * sec / len(rows):.0f} |")


if __name__ == "__main__":
    main()
