r"""How many LM tokens suffix-KV reuse could save the priority shortlist search (issue 28).

`label --shortlist K --proposer none` re-scores each shortlisted candidate over its whole suffix every
step. A candidate re-scored before, with every deletion since then *after* it, has an unchanged suffix
up to the first of those deletions: carrying its suffix KV (as the exact search's `suffix_reuse` does)
would skip those inputs. This replays one run of the search per chain, records every re-score (the
state's kept tokens and the candidates), and counts the suffix inputs each re-score runs with and
without such reuse (the last unchanged input still runs: its target changed). It changes nothing in
the search; it estimates whether implementing the reuse would pay.

    python benchmarks/prio_reuse_estimate.py --ranked data/ranked/long/gsm8k-smollm2-joint.jsonl \
        --ids gsm8k-train-1503,gsm8k-train-5067 --shortlist 4 --threads 1
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def reuse_savings(log: list[tuple[list[int], list[int]]], answer_len: int) -> tuple[int, int]:
    """(suffix inputs the re-scores of `log` ran, inputs they would run with suffix reuse).

    log: per re-score call, (the state's kept original indices, the re-scored sequence positions)."""
    last: dict[int, list[int]] = {}  # original index -> kept list at its last re-score
    full = reused = 0
    for kept, js in log:
        now = set(kept)
        length = len(kept) + answer_len
        for j in js:
            k = kept[j]
            cost = max(0, length - j - 2)  # suffix inputs but the first (predicted by the unchanged prefix)
            full += cost
            c = cost
            if k in last:
                prev = last[k]
                pj = prev.index(k)
                gone = [i for i, t in enumerate(prev) if t not in now]
                if all(g > pj for g in gone):  # nothing before k changed: its suffix is valid up to the first gone
                    same = (min(gone) if gone else len(prev)) - pj - 1
                    c = max(0, cost - max(0, same - 1))
            reused += c
            last[k] = kept
    return full, reused


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranked", required=True, help="ranked JSONL (its chains' token ids are used)")
    p.add_argument("--ids", required=True, help="comma list of chain ids")
    p.add_argument("--shortlist", type=int, default=4, help="K of the priority shortlist (default 4)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    want = [i.strip() for i in args.ids.split(",") if i.strip()]
    if not want:
        p.error("--ids: give at least one chain id")
    if args.shortlist < 1:
        p.error(f"--shortlist must be >= 1, got {args.shortlist}")
    if not Path(args.ranked).is_file():
        p.error(f"--ranked {args.ranked}: no such file")
    torch.set_num_threads(args.threads)
    from predictor import load_lm
    from predictor.greedy import approximate as A
    from predictor.layout import Layout

    lm = load_lm()
    recs = {r["id"]: r for r in (json.loads(line) for line in open(args.ranked) if line.strip()) if r["id"] in want}
    missing = [i for i in want if i not in recs]
    if missing:
        raise SystemExit(f"{args.ranked}: no chain {', '.join(missing)}")
    orig = A._WindowScorer.gains
    for cid in want:
        r = recs[cid]
        lay = Layout(r["prompt_ids"], r["reasoning_ids"], r["answer_ids"])
        log: list[tuple[list[int], list[int]]] = []

        def gains(self, js, _orig=orig, _log=log):
            _log.append((list(self.cur.kept), sorted(js)))
            return _orig(self, js)

        A._WindowScorer.gains = gains
        try:
            res = A.approximate_greedy_layout(lm, lay, r["objective"],
                                              options=A.shortlist_options(args.shortlist, proposer=False))
        finally:
            A._WindowScorer.gains = orig
        full, reused = reuse_savings(log[1:], len(lay.answer_ids))  # log[0]: the first scoring (window 1)
        print(f"{cid} n={lay.n}: {res.lm_tokens} LM tokens, re-scores {full}, with reuse {reused}: saves "
              f"{1 - reused / max(full, 1):.2f} of the re-scores, {(full - reused) / res.lm_tokens:.2f} of all", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
