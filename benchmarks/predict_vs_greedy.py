"""Seconds per chain: `RankPredictor.predict_ranks` (one forward pass) vs the exact greedy labeler.

Part 1 picks GSM8K chains whose reasoning has ~50, 100, 150 tokens (embedded LM layout), runs
predict_ranks with the pretrained predictor (or --predictor DIR / a scorer name) and the greedy
labeler on the same chains, and prints both side by side. Greedy costs O(n^2) forward passes; for
chains longer than --full-upto only its first --max-steps steps run and the full time is
extrapolated by the tokens the full search would push through the LM (marked "est.").

Part 2 measures `refresh` (forward passes per chain: 1, 2, 5, 10): mean per-chain Spearman with the
greedy ranks and seconds per chain, on the chains of a ranked file (greedy labels of the same LM;
pass held-out chains, e.g. the evaluation split, so a learned predictor is not scored on its
training data).

    python benchmarks/predict_vs_greedy.py --threads 1 [--predictor DIR] [--ranked held_out.jsonl]
    python benchmarks/predict_vs_greedy.py --threads 1 --lengths ''      # part 2 only
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def greedy_tokens(n: int, a: int, steps: int | None = None) -> int:
    """Tokens the fast greedy labeler runs through the LM for n reasoning and a answer tokens
    (each step: one pass over kept + answer, then every candidate's suffix)."""
    total = 0
    for m in range(n, 0 if steps is None else max(0, n - steps), -1):
        total += (m + a) + sum(max(0, m - j - 2 + a) for j in range(m))
    return total


def _seconds(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gsm8k", default="data/gsm8k/train.jsonl", help="GSM8K JSONL to pick chains from")
    ap.add_argument("--lengths", default="50,100,150", help="target reasoning lengths (tokens)")
    ap.add_argument("--per-length", type=int, default=1, help="chains per target length")
    ap.add_argument("--exclude", default="data/ranked/gsm8k-smollm2-joint.jsonl",
                    help="ranked/chains JSONL whose questions are not picked (training data)")
    ap.add_argument("--predictor", default=None, help="predictor dir or scorer name (default: pretrained)")
    ap.add_argument("--fallback", default="attention", help="scorer used when the pretrained predictor is missing")
    ap.add_argument("--full-upto", type=int, default=60, help="run the full greedy search up to this length")
    ap.add_argument("--max-steps", type=int, default=3, help="greedy steps timed on longer chains")
    ap.add_argument("--ranked", default="data/ranked/gsm8k-smollm2-joint.jsonl",
                    help="ranked JSONL (greedy labels) for the refresh table; '' to skip")
    ap.add_argument("--refresh", default="1,2,5,10")
    ap.add_argument("--max-ranked", type=int, default=20, help="chains of --ranked used")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="predict_ranks timings per chain (median)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from scipy.stats import spearmanr

    from predictor.chains import iter_jsonl, read_gsm8k
    from predictor.evaluation import stored_split_ids
    from predictor.greedy import SearchOptions, greedy_prune
    from predictor.layout import encode_chain
    from predictor.lm import load_lm
    from predictor.ranked import read_ranked, record_chain
    from predictor.rank_predictor import RankPredictor
    from predictor.predictor_dir import pretrained_dir

    lm = load_lm()
    name = args.predictor
    note = ""
    if name is None and not pretrained_dir().exists():
        name, note = args.fallback, f" (pretrained predictor missing: scorer '{args.fallback}' stands in)"
    rp = RankPredictor.load(name, lm=lm)
    print(f"LM {lm.name} ({lm.fingerprint}), {torch.get_num_threads()} thread(s), {lm.device}; "
          f"predictor: {rp!r}{note}")

    excluded = set()
    if args.exclude and Path(args.exclude).is_file():
        excluded = {obj.get("question") for _, obj in iter_jsonl(args.exclude)}
    pool = [c for c in read_gsm8k(args.gsm8k) if c.question not in excluded]
    picked = []
    for want in (int(x) for x in args.lengths.split(",") if x.strip()):
        got = [c for c in pool if abs(encode_chain(lm.tokenizer, c).n - want) <= 2][: args.per_length]
        picked += [(want, c) for c in got]

    if picked:  # --lengths '' skips part 1
        rp.predict_ranks(picked[0][1])  # warm-up (eager attention switch, allocator)
        print("\n| target n | chain | n | predict_ranks s | greedy s | speed-up |")
        print("|---|---|---|---|---|---|")
        for want, c in picked:
            lay = encode_chain(lm.tokenizer, c)
            n, a = lay.n, len(lay.answer_ids)
            tp = statistics.median(_seconds(rp.predict_ranks, c) for _ in range(args.repeats))
            steps = None if n <= args.full_upto else args.max_steps
            tg = _seconds(lambda: greedy_prune(lm, c, SearchOptions(max_steps=steps)))
            est = ""
            if steps is not None:
                tg *= greedy_tokens(n, a) / greedy_tokens(n, a, steps)
                est = " (est.)"
            print(f"| {want} | {c.id} | {n} | {tp:.2f} | {tg:.0f}{est} | {tg / tp:.0f}x |", flush=True)

    if not args.ranked or not Path(args.ranked).is_file():
        return
    recs = [r for r in read_ranked(args.ranked, objective="joint") if r["lm"] == lm.fingerprint]
    held_out = stored_split_ids(getattr(rp.scorer, "metadata", {}) or {}, "test")
    if held_out is not None:  # a learned predictor: only its test chains, never its training data
        recs = [r for r in recs if str(r["id"]) in set(held_out)]
        print(f"\nrefresh: the predictor's held-out test split ({len(recs)} chains in {args.ranked})")
    recs = recs[: args.max_ranked]
    if not recs:
        return
    print(f"\nrefresh on {len(recs)} labeled chains of {args.ranked} "
          f"(n = {min(len(r['ranks']) for r in recs)}-{max(len(r['ranks']) for r in recs)}; "
          f"greedy labeler: {statistics.mean(r['seconds'] for r in recs):.0f} s/chain recorded)")
    print("| forward passes | mean Spearman vs greedy | s/chain |")
    print("|---|---|---|")
    for k in (int(x) for x in args.refresh.split(",")):
        rhos, secs = [], []
        for r in recs:
            t = time.perf_counter()
            pred = rp.predict_ranks(record_chain(r), refresh=k)
            secs.append(time.perf_counter() - t)
            rhos.append(spearmanr(pred, r["ranks"])[0])
        print(f"| {k} | {np.mean(rhos):.3f} | {np.mean(secs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
