r"""Record every candidate's exact deletion gain at every step of the exact greedy search (issue 28).

The shortlist searches (`label --shortlist K`) are exact whenever greedy's next deletion is in their
shortlist, so how well a cheap ranking of the survivors recalls that deletion decides their agreement.
This runs the exact search with suffix reuse but without the bound (so every candidate's score is
exact, not an upper bound) and writes, per chain, one row per (step, surviving candidate):

    step, orig (original token index), pos (position in the current sequence), m (survivors),
    gain (objective after deleting it minus the current one, nats), local (its exact local part: own
    log-prob term + the next token's change, free from the current sequence), chosen (1 for greedy's
    deletion at that step)

to OUT/<chain id>.npz (written atomically; chains already there are skipped, so a run resumes). The
order it follows is checked against the ranked record's (it is the exact search: they must agree).
`benchmarks/shortlist_recall.py` reads these files.

    python benchmarks/gain_matrices.py --ranked data/ranked/gsm8k-smollm2-joint.jsonl --split train \
        --min-tokens 40 --limit 20 --out runs/gains/train --threads 1
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch

COLUMNS = ("step", "orig", "pos", "m", "gain", "local", "chosen")


@torch.no_grad()
def chain_gains(lm, lay) -> tuple[dict[str, np.ndarray], list[int]]:
    """The per-(step, candidate) table of one chain (module doc) and the order the search followed."""
    from predictor.greedy.approximate import _Sequence
    from predictor.greedy.search import make_scorer

    sc = make_scorer(lm, lay, "joint", reuse=True, bound=False)
    seq_sc = make_scorer(lm, lay, "joint", pack=True, reuse=False, bound=False)
    cur = _Sequence(seq_sc)
    kept = list(range(lay.n))
    sc.step(kept)
    rows: list[np.ndarray] = []
    order: list[int] = []
    step = 0
    while kept:
        obj = cur.objective(True)
        scores = np.asarray(sc.candidates(kept), dtype=np.float64)
        local = cur.local_gains(True)
        b = int(np.argsort(-scores, kind="stable")[0])
        m = len(kept)
        rows.append(np.stack([np.full(m, step), np.asarray(kept), np.arange(m), np.full(m, m),
                              scores - obj, local, (np.arange(m) == b).astype(float)], axis=1))
        order.append(kept[b])
        sc.advance(b)
        kept = kept[:b] + kept[b + 1:]
        cur.recompute(kept, b)
        step += 1
    table = np.concatenate(rows)
    return {c: table[:, i] for i, c in enumerate(COLUMNS)}, order


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranked", required=True, help="ranked JSONL of exact labels (token ids and order are read)")
    p.add_argument("--split", choices=["train", "val", "test", "all"], default="train",
                   help="chains of this split (predictor.splits, seed 0; default train)")
    p.add_argument("--min-tokens", type=int, default=1, help="shortest reasoning to take (default 1)")
    p.add_argument("--max-tokens", type=int, default=10 ** 9, help="longest reasoning to take")
    p.add_argument("--limit", type=int, default=None, help="at most this many chains (longest first)")
    p.add_argument("--out", required=True, help="output folder (one .npz per chain)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    for name in ("min_tokens", "max_tokens", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.limit is not None and args.limit < 1:
        p.error(f"--limit must be >= 1, got {args.limit}")
    if args.min_tokens > args.max_tokens:
        p.error(f"--min-tokens {args.min_tokens} is above --max-tokens {args.max_tokens}")
    if not Path(args.ranked).is_file():
        p.error(f"--ranked {args.ranked}: no such file")
    torch.set_num_threads(args.threads)
    from predictor import load_lm
    from predictor.jsonl_io import atomic_write_bytes
    from predictor.layout import Layout
    from predictor.ranked import approximate_label, read_ranked
    from predictor.splits import split_ids

    every = read_ranked(args.ranked)
    recs = [r for r in every if approximate_label(r) is None]
    if not recs:
        p.error(f"--ranked {args.ranked}: none of its {len(every)} records is an exact label "
                f"(e.g. {approximate_label(every[0]) if every else 'empty file'})")
    other = sorted({r["objective"] for r in recs} - {"joint"})
    if other:
        p.error(f"--ranked {args.ranked}: records of the {', '.join(other)} objective; the tables are "
                "for the joint objective (the shipped labels)")
    if args.split != "all":
        keep = set(split_ids([r["id"] for r in recs])[args.split])
        recs = [r for r in recs if r["id"] in keep]
    recs = [r for r in recs if args.min_tokens <= len(r["reasoning_ids"]) <= args.max_tokens]
    recs.sort(key=lambda r: (-len(r["reasoning_ids"]), r["id"]))
    recs = recs[: args.limit]
    if not recs:
        p.error(f"no exact record of {args.ranked} in split {args.split} with "
                f"{args.min_tokens}-{args.max_tokens} reasoning tokens")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [r for r in recs if not (out / f"{r['id']}.npz").exists()]
    print(f"{len(recs)} chains selected, {len(recs) - len(todo)} already in {out}", flush=True)
    if not todo:
        return 0
    lm = load_lm()
    wrong = sorted({r["lm"] for r in todo} - {lm.fingerprint})
    if wrong:
        raise SystemExit(f"gain_matrices.py: --ranked {args.ranked} was labeled with {', '.join(wrong)}, "
                         f"not the embedded LM ({lm.fingerprint})")
    t0 = time.perf_counter()
    for i, r in enumerate(recs):
        path = out / f"{r['id']}.npz"
        if path.exists():
            continue
        lay = Layout(r["prompt_ids"], r["reasoning_ids"], r["answer_ids"])
        t = time.perf_counter()
        table, order = chain_gains(lm, lay)
        if order != list(r["order"]):
            first = next(k for k, (a, b) in enumerate(zip(order, r["order"])) if a != b)
            raise SystemExit(f"gain_matrices.py: {r['id']}: the search's order differs from the record's at "
                             f"step {first}: not the exact search of this LM and objective; nothing written")
        buf = io.BytesIO()
        np.savez(buf, **table)
        atomic_write_bytes(path, buf.getvalue())
        done = time.perf_counter() - t0
        print(f"[{i + 1}/{len(recs)}] {r['id']} n={lay.n} {time.perf_counter() - t:.1f}s "
              f"elapsed {done / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
