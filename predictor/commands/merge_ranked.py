"""Merge ranked JSONL files (e.g. the shards of a parallel `predictor label` run) into one file.

Records are validated, de-duplicated by (id, objective) and written in the order of --order (a
chains file), so a merged data set is independent of how it was sharded. The output is replaced
atomically; inputs are never modified.
"""
from __future__ import annotations

import argparse

HELP = "merge ranked shards into one validated file, in chains-file order"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", nargs="+", required=True, help="ranked JSONL files (shards)")
    p.add_argument("--order", required=True, help="chains JSONL giving the output order")
    p.add_argument("--out", required=True, help="merged ranked JSONL (written atomically)")
    p.add_argument("--tolerate-partial", action="store_true",
                   help="ignore a cut last line in an input that a running labeler is still writing")


def _read_complete(path: str, tolerate_partial: bool) -> list[dict]:
    import tempfile
    from pathlib import Path

    from ..ranked import read_ranked

    if not tolerate_partial:
        return read_ranked(path)
    data = Path(path).read_bytes()
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        f.write(data[: data.rfind(b"\n") + 1])  # complete lines only ("\n"-separated, like every reader)
    try:
        return read_ranked(f.name)
    finally:
        Path(f.name).unlink()


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..chains import read_chains
    from ..jsonl_io import atomic_write_jsonl

    if Path(args.out).resolve() in {Path(p).resolve() for p in args.inp}:
        raise ValueError("--out must not be one of the inputs")
    recs, eos_from = {}, {}
    for path in args.inp:
        for r in _read_complete(path, args.tolerate_partial):
            recs.setdefault((r["id"], r["objective"]), r)
            eos_from.setdefault(r["answer_ids"][-1], f"{path} (id {r['id']})")
    if len(eos_from) > 1:  # every answer ends with the tokenizer's eos: two values = two layouts
        raise ValueError("the records end their answers with different tokens: "
                         + "; ".join(f"{t} first in {where}" for t, where in sorted(eos_from.items()))
                         + " (a tokenizer changed between labeling runs); merge each layout separately")
    rank = {c.id: k for k, c in enumerate(read_chains(args.order))}
    missing = [k for k in recs if k[0] not in rank]
    if missing:
        raise ValueError(f"{len(missing)} records are not in {args.order} (first: {missing[0][0]})")
    ordered = sorted(recs.values(), key=lambda r: (r["objective"], rank[r["id"]]))
    atomic_write_jsonl(args.out, ordered)
    print(f"merged {len(ordered)} records into {args.out}")
    return 0
