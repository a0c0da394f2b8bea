"""Show one chain as a token heatmap: an HTML page (and optionally a PNG) coloring each reasoning token by
its predicted pruning rank (red: pruned first, green: kept longest), side by side with the exact greedy
ranks when the input line is a ranked record (`predictor label` output), and marking what `prune` keeps
at the budget (--keep): kept tokens boxed, removed ones struck through.

    predictor show --in data/ranked/gsm8k-smollm2-joint.jsonl --id gsm8k-train-1234 --out chain.html --png chain.png
    predictor show --in chains.jsonl --out chain.html --keep 0.3 --scorer surprisal
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import add_lm_arguments, predictor_help

HELP = "write a token heatmap (HTML, PNG) of one chain's predicted and greedy ranks"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", required=True, help="chains or ranked JSONL")
    p.add_argument("--id", default=None, help="chain id to show (default: the first line)")
    p.add_argument("--out", required=True, help="HTML page to write (self-contained)")
    p.add_argument("--png", default=None, help="also write the heatmap as a PNG image")
    p.add_argument("--keep", type=float, default=0.5, metavar="RATIO",
                   help="budget whose kept tokens are marked, in (0, 1] (default: %(default)s)")
    g = p.add_mutually_exclusive_group()
    from ..scorers import DIRECTORY_SCORERS, SCORERS

    g.add_argument("--scorer", choices=[s for s in SCORERS if s not in DIRECTORY_SCORERS],
                   help="rank with a registered scorer instead of a learned predictor")
    g.add_argument("--predictor", metavar="DIR", help=predictor_help())
    p.add_argument("--no-check-lm", action="store_true",
                   help="use a predictor with an LM other than the one it was trained for (e.g. a fine-tune of it); "
                        "the LM must still have the same layers x heads: another shape is refused before any chain")
    add_lm_arguments(p, matmul=False)


def find_record(path: str, chain_id: str | None) -> tuple[str, dict]:
    """("file:line", object) of the first JSONL object of `path`, or of the one whose id is chain_id
    (a line without id has `predictor predict`'s default id "<file stem>-<line>"). Looking for an
    id, malformed lines are skipped (and counted in the error when the id is not found); errors
    name the file and line."""
    from ..chains import ChainFormatError, iter_jsonl_lines

    bad: list[str] = []
    for lineno, obj in iter_jsonl_lines(path):
        where = f"{path}:{lineno}"
        if isinstance(obj, ChainFormatError) or not isinstance(obj, dict):
            err = str(obj) if isinstance(obj, ChainFormatError) else f"{where}: not a JSON object"
            if chain_id is None:
                raise ValueError(err)
            bad.append(err)
            continue
        rid = obj.get("id")
        if chain_id is None or str(rid if rid not in (None, "") else f"{Path(path).stem}-{lineno}") == chain_id:
            return where, obj
    if chain_id is None:
        raise ValueError(f"{path}: no chains")
    skipped = f" ({len(bad)} malformed line{'s' if len(bad) != 1 else ''} skipped, e.g. {bad[0]})" if bad else ""
    raise ValueError(f"{path}: no chain with id {chain_id!r}{skipped}")


def run(args: argparse.Namespace) -> int:
    from ..chains import Chain
    from ..engines.cli_args import load_predictor_from_args, prune_options
    from ..show import token_view, write_html, write_png

    options = prune_options(keep_ratio=args.keep)  # fail before loading anything
    where, rec = find_record(args.inp, args.id)
    chain = Chain.from_mapping(rec, where)  # a malformed chain fails before the LM loads
    if not chain.id:
        rec = {**rec, "id": args.id or f"{Path(args.inp).stem}-{where.rsplit(':', 1)[1]}"}
    rp = load_predictor_from_args(args)
    note = rp.extra_pass_note()  # a predictor that runs LM passes beyond the one forward pass says so first
    if note:
        try:
            note = rp.extra_pass_note(rp.num_tokens(chain))
        except ValueError:
            pass  # an unscorable chain: token_view says why
        print(note, file=sys.stderr)
    view = token_view(rec, predictor=rp, options=options)
    write_html(view, args.out)
    if args.png:
        write_png(view, args.png)
    rho = view.spearman()
    print(f"{view.title}: {view.n} tokens, keep {len(view.kept)}; "
          + (f"Spearman with greedy {rho:+.3f}; " if rho is not None else "no greedy ranks in the input; ")
          + f"wrote {args.out}" + (f" and {args.png}" if args.png else ""), file=sys.stderr)
    return 0
