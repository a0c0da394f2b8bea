"""`predict_ranks` (shipped predictor) against a plain sdpa forward of the same chain, and a list of
short chains one at a time against batched; time and peak memory, all timed side by side in one run.

    python benchmarks/observe_speed.py --threads 1 --lengths 50,150,1000,3000 --repeats 3 --chains 20

Plain forward: `lm.model(input_ids=prompt + reasoning + answer)` with sdpa attention (logits at every
position), what a user's own scoring pass costs. predict_ranks: the shipped predictor
(predictor/pretrained/smollm2-joint) end to end: tokenization, the observation pass (attention
statistics, hidden states, logits), features and the regressor. Chains of a target length: the
reasoning of consecutive GSM8K training chains joined and cut to exactly that many tokens, under the
question and answer of the first one. Short chains: the first --chains test-split chains.
"Before": the eager-attention reference path (`observe(method="eager")`), one chain at a time, as
predict_ranks ran before batching and chunked statistics.

Peak memory: one call each, after the timings, in a forked child process: the kernel's high-water
mark of its resident set minus the resident set when the call starts (the model's weights, loaded
before, are not counted); see `peak_bytes`. Medians of --repeats; the
compared calls alternate within each repeat, so load on the machine hits both alike.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def peak_bytes(fn, warm) -> int:
    """Peak RSS increase (bytes) of one call, run in a forked child: the kernel's high-water mark of the
    child's resident set (VmHWM, reset through /proc/self/clear_refs just before the call) minus the
    RSS when the call starts, after `warm()` (a short predict_ranks: pages in the LM's and the
    regressor's weights, as in a warmed-up process), with freed
    heap memory returned first and glibc's mmap threshold fixed
    at 64 KiB (so the call's big buffers are fresh pages, not reuse of memory the parent freed)."""
    import ctypes
    import os

    import gc

    gc.collect()
    gc.freeze()  # the child's collector would otherwise touch every object, copying the parent's heap pages
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            gc.disable()
            warm()  # a forked child maps the weights' file pages lazily: fault them in before measuring
            libc = ctypes.CDLL("libc.so.6")
            libc.malloc_trim(0)
            libc.mallopt(-3, 65536)  # M_MMAP_THRESHOLD
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the high-water mark (VmHWM) to the current RSS
            base = _rss()
            fn()
            with open("/proc/self/status") as f:
                hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
            os.write(w, str(hwm - base).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = os.read(r, 64)
    os.close(r)
    os.waitpid(pid, 0)
    gc.unfreeze()
    if not data:
        raise RuntimeError("the memory-measuring child process failed")
    return int(data)


def chain_of_length(lm, records, n: int):
    """A chain whose reasoning is exactly n tokens: consecutive chains' reasoning joined, then cut."""
    from predictor.chains import Chain
    from predictor.layout import encode_chain
    from predictor.ranked import record_chain

    first = record_chain(records[0])
    parts, ids, i = [], [], 0
    while len(ids) < n + 8:
        parts.append(record_chain(records[i % len(records)]).reasoning)
        ids = lm.tokenizer("\n".join(parts), add_special_tokens=False)["input_ids"]
        i += 1
    for cut in range(n, n + 8):  # decoding then re-encoding can merge tokens: find the cut that gives n
        chain = Chain(first.question, lm.tokenizer.decode(ids[:cut]).strip(), first.answer, f"len{n}")
        if encode_chain(lm.tokenizer, chain).n == n:
            return chain
    raise RuntimeError(f"could not build a chain of exactly {n} reasoning tokens")


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/ranked/gsm8k-smollm2-joint.jsonl")
    ap.add_argument("--lengths", default="50,150,1000,3000", help="reasoning tokens of the long-chain rows")
    ap.add_argument("--chains", type=int, default=20, help="short test-split chains, one at a time vs batched")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from predictor.layout import encode_chain
    from predictor.lm import load_lm
    from predictor.observe import observe
    from predictor.rank_predictor import RankPredictor
    from predictor.ranked import read_ranked, record_chain
    from predictor.splits import split_ids

    recs = read_ranked(args.data, objective="joint")
    lm = load_lm(device=args.device)
    rp = RankPredictor.load(lm=lm)
    sync = torch.cuda.synchronize if lm.device.type == "cuda" else (lambda: None)

    def plain(chain):
        x = torch.tensor([encode_chain(lm.tokenizer, chain).sequence()], device=lm.device)
        with torch.no_grad():
            lm.model(input_ids=x, use_cache=False)
        sync()

    def ranks(chains):
        rp.predict_ranks(chains)
        sync()

    def before(chains):  # the reference: eager attention, one chain per pass
        kw = dict(rp.scorer.observe_kwargs)
        for c in chains:
            rp.scorer.score(observe(lm, c, attention=rp.scorer.needs_attention, method="eager", **kw))

    ranks(record_chain(recs[0]))  # warm-up
    plain(record_chain(recs[0]))
    mib = 1 << 20
    long = [chain_of_length(lm, recs, int(x)) for x in args.lengths.split(",") if x.strip()]
    test = set(split_ids([r["id"] for r in recs])["test"])
    short = [record_chain(r) for r in recs if r["id"] in test][: args.chains]
    lens = [encode_chain(lm.tokenizer, c).n for c in short]
    cases = [(f"plain {c.id}", lambda c=c: plain(c)) for c in long] + \
        [(f"predict {c.id}", lambda c=c: ranks(c)) for c in long] + \
        [("before", lambda: before(short)), ("single", lambda: [ranks(c) for c in short]),
         ("batched", lambda: ranks(short))]
    times: dict[str, list[float]] = {k: [] for k, _ in cases}
    for c in long:  # each length: plain and predict_ranks alternate
        for _ in range(args.repeats):
            times[f"plain {c.id}"].append(seconds(lambda: plain(c)))
            times[f"predict {c.id}"].append(seconds(lambda: ranks(c)))
        print(f"timed {c.id}: plain {times[f'plain {c.id}']}, predict_ranks {times[f'predict {c.id}']}",
              file=sys.stderr, flush=True)
    for _ in range(args.repeats):
        for k, fn in cases[-3:]:
            times[k].append(seconds(fn))
    t = {k: statistics.median(v) for k, v in times.items()}
    mem = {k: peak_bytes(fn, lambda: ranks(short[0])) for k, fn in cases}
    print(f"device {lm.device}, {args.threads} thread(s), median of {args.repeats}; predictor {rp!r}\n")
    print("| reasoning tokens | sequence tokens | plain forward s | predict_ranks s | time ratio "
          "| plain peak MiB | predict_ranks peak MiB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for c in long:
        tp, tr = t[f"plain {c.id}"], t[f"predict {c.id}"]
        mp, mr = mem[f"plain {c.id}"], mem[f"predict {c.id}"]
        print(f"| {encode_chain(lm.tokenizer, c).n} | {encode_chain(lm.tokenizer, c).total} | {tp:.2f} | {tr:.2f} "
              f"| {tr / tp:.2f} | {mp / mib:.0f} | {mr / mib:.0f} | {mr / max(mp, 1):.2f} |")
    print(f"\n{len(short)} test chains of {min(lens)}-{max(lens)} reasoning tokens\n")
    print("| mode | s for all | chains/s | rate vs one at a time | peak MiB |\n|---|---|---|---|---|")
    for k, name in (("before", "before: eager reference, one at a time"), ("single", "one at a time"),
                    ("batched", "one call with the list (batched)")):
        print(f"| {name} | {t[k]:.2f} | {len(short) / t[k]:.2f} | {t['single'] / t[k]:.2f}x | {mem[k] / mib:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
