"""Re-run the exact greedy search on records of a ranked file and compare with what they store.

The search is re-run on the token ids each record stores (prompt_ids, reasoning_ids, answer_ids), so a
difference comes from the search (hardware, library versions, numerics), not from tokenization. Use
it on labels produced elsewhere, e.g. on a GPU machine, before merging them. Each record also says
whether its stored layout is the one this LM's tokenizer gives today (a different eos token, say).

Per record: same order?, the first step where the orders part, the stored and recomputed objective
after that step (equal values = a tie broken differently), Spearman of the two rank vectors.
Exits 1 if any order differs. Approximate labels (`label --budget F < 1` or `--shortlist K`:
`ranked.approximate_label`) are no exact search's order: they are skipped with a notice (--limit then
counts the exact records), and a selection of approximate records only exits 2.

    predictor verify-ranked data/ranked/gsm8k-smollm2-joint.jsonl --limit 3 --device cpu --threads 1
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter

from ..engines.cli_args import load_lm_from_args
from .common import add_lm_arguments, comma_list, positive_int

HELP = "re-run the greedy search on stored token ids and compare orders (checks labels made elsewhere)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="ranked JSONL")
    p.add_argument("--limit", type=positive_int, default=5,
                   help="check the first N records, approximate labels skipped (default: %(default)s)")
    p.add_argument("--ids", type=comma_list(), default=None, help="comma-separated record ids to check instead of the first N")
    p.add_argument("--batch-tokens", type=positive_int, default=None, metavar="N",
                   help="candidate tokens per forward, >= 1 (default: auto)")
    add_lm_arguments(p)


def exact_records(recs: list[dict]) -> tuple[list[dict], list[tuple[str, str]]]:
    """(the records the exact search, strided or not, should reproduce; (id, how it departs) of the
    approximate ones: `ranked.approximate_label` of a --budget or --shortlist record)."""
    from ..ranked import approximate_label

    # a strided record is checked: the strided search is re-run as it stands
    how = [approximate_label(r) if int(r.get("stride") or 1) == 1 else None for r in recs]
    return [r for r, h in zip(recs, how) if not h], [(str(r["id"]), h) for r, h in zip(recs, how) if h]


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..greedy import greedy_layout
    from ..layout import Layout
    from ..ranked import layout_mismatch, order_agreement, read_ranked

    recs = read_ranked(args.file)
    if args.ids:
        want = args.ids
        by_id = {str(r["id"]): r for r in recs}
        missing = [i for i in want if i not in by_id]
        if missing:
            raise ValueError(f"{args.file}: no record with id {missing[0]!r}")
        recs = [by_id[i] for i in want]
    recs, approx = exact_records(recs)
    if approx:
        kinds = ", ".join(f"{how}: {k}" for how, k in Counter(h for _, h in approx).most_common())
        what = (f"{len(approx)} approximate label(s) ({kinds}; e.g. {approx[0][0]!r}), written by "
                "label --budget / --shortlist: the exact search does not reproduce them")
        if not recs:
            raise ValueError(f"{args.file}: {what}, and no exact record is left to verify")
        print(f"verify-ranked: skipped {what}", file=sys.stderr)
    if not args.ids:
        recs = recs[: args.limit]
    lm = load_lm_from_args(args)
    other_lm = {r["lm"] for r in recs} - {lm.fingerprint}
    if other_lm:
        print(f"warning: records were labeled with LM {sorted(other_lm)}, this LM is {lm.fingerprint}", file=sys.stderr)
    same, rhos = 0, []
    for r in recs:
        lay = Layout(list(r["prompt_ids"]), list(r["reasoning_ids"]), list(r["answer_ids"]))
        res = greedy_layout(lm, lay, r["objective"], int(r["stride"]), args.batch_tokens)
        part, rho = order_agreement(r["order"], res.order)
        rhos.append(rho)
        layout = ("layout as today" if layout_mismatch(r, lm.tokenizer, lm.max_length) is None
                  else "layout differs from today's tokenizer")
        if part is None:
            same += 1
            print(f"{r['id']} ({r['objective']}, n={lay.n}): same order; {layout}; {res.seconds:.1f} s")
        else:
            print(f"{r['id']} ({r['objective']}, n={lay.n}): orders part at step {part} "
                  f"(objective after it: stored {r['trajectory'][part - 1]:.6f}, now {res.trajectory[part - 1]:.6f}); "
                  f"Spearman {rho:.4f}; {layout}; {res.seconds:.1f} s")
    print(f"{same}/{len(recs)} identical orders; mean Spearman {np.mean(rhos):.4f}")
    return 0 if same == len(recs) else 1
