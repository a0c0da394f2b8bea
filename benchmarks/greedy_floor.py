"""How close the fast greedy labeler runs to the LM's plain forward throughput (its compute floor).

The exact search must push every candidate's suffix through the LM (each token after a deletion
sees a new context); `greedy.py` already shares the prompt and every unchanged prefix. What is left
to win is overhead: this script times the first --steps greedy steps of a few chains and a plain
batched forward (decoder + LM head + log-softmax, no cache) of the same number of tokens, in the
same process, interleaved, and prints both throughputs (LM tokens per second) and their ratio.
A ratio near 1 means a faster exact labeler needs fewer tokens, i.e. a different algorithm.

    python benchmarks/greedy_floor.py --threads 1 --steps 3 --repeats 3

--profile instead runs the first greedy step of the first chain under torch.profiler and prints the
operators that took the time (is what is left matrix products, or overhead around them?).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from greedy_steps_args import add_greedy_steps_arguments, pick_chains  # beside this script


def plain_forward_seconds(model, tokens: int, width: int, vocab: int) -> float:
    """Seconds for a cache-free forward of `tokens` tokens in rows of `width`, head and log-softmax included."""
    rows = max(1, tokens // width)
    x = torch.randint(0, vocab, (rows, width))
    t = time.perf_counter()
    with torch.no_grad():
        torch.log_softmax(model(input_ids=x, use_cache=False).logits.float(), dim=-1)
    return time.perf_counter() - t


def profile_step(lm, chain) -> None:
    """Print the operators of one greedy step (all candidate deletions of the full chain), by self time."""
    from torch.profiler import ProfilerActivity, profile

    from predictor.greedy import SearchOptions, greedy_prune

    greedy_prune(lm, chain, SearchOptions(max_steps=1))  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        res = greedy_prune(lm, chain, SearchOptions(max_steps=1))
    print(f"{chain.id}: one step, {res.lm_tokens} LM tokens")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_greedy_steps_arguments(ap, steps=3)
    ap.add_argument("--profile", action="store_true", help="profile one greedy step instead (operator table)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from predictor.greedy import SearchOptions, greedy_prune
    from predictor.layout import encode_chain
    from predictor.lm import load_lm

    lm = load_lm(args.model)
    vocab = lm.model.config.get_text_config().vocab_size
    picked = pick_chains(lm, args)
    print(f"LM {lm.name} ({lm.fingerprint}), {torch.get_num_threads()} thread(s), {lm.dtype}")
    if args.profile:
        profile_step(lm, picked[0])
        return
    print("| chain | n | steps | LM tokens | greedy s | greedy tok/s | plain forward tok/s | greedy / plain |")
    print("|---|---|---|---|---|---|---|---|")
    for c in picked:
        n = encode_chain(lm.tokenizer, c).n
        g_t, p_t, tokens = [], [], 0
        for _ in range(args.repeats):
            t = time.perf_counter()
            res = greedy_prune(lm, c, SearchOptions(max_steps=args.steps))
            g_t.append(time.perf_counter() - t)
            tokens = res.lm_tokens
            # rows as wide as the fast path's average suffix (answer + half the chain)
            p_t.append(plain_forward_seconds(lm.model, tokens, n // 2 + 10, vocab))
        g, p = statistics.median(g_t), statistics.median(p_t)
        print(f"| {c.id} | {n} | {args.steps} | {tokens} | {g:.1f} | {tokens / g:.0f} | {tokens / p:.0f} | "
              f"{p / g:.2f} |", flush=True)


if __name__ == "__main__":
    main()
