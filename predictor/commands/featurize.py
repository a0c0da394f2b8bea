"""Compute per-token feature tables for a chains or ranked JSONL file and store them in the feature cache.

One forward pass per chain; chains already in the cache (same LM, same feature spec, same text)
are skipped, so a re-run after an interruption continues where it stopped. For ranked input each
record's reasoning_ids must equal this LM's layout of the chain (otherwise the labels would not line
up with the feature rows): a mismatch is an error naming file:line.

    predictor featurize --in data/ranked/gsm8k-smollm2-joint.jsonl
    predictor featurize --in chains.jsonl --groups logits,position,lexical --cache /tmp/feats
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..engines.cli_args import load_lm_from_args
from .common import add_lm_arguments, comma_list, parse_shard, positive_int

HELP = "fill the feature cache for a chains or ranked JSONL file (one forward pass per chain)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..features import DEFAULT_GROUPS, FEATURE_GROUPS

    p.add_argument("--in", dest="inp", required=True, help="ranked JSONL (from `label`) or chains JSONL")
    add_lm_arguments(p)
    p.add_argument("--groups", type=comma_list(), default=",".join(DEFAULT_GROUPS),
                   help=f"comma-separated feature groups among {','.join(FEATURE_GROUPS)} (default: %(default)s)")
    p.add_argument("--no-per-head", action="store_true", help="only layer/chain aggregates of attention stats")
    p.add_argument("--cache", default=None, help="feature cache root (default: $PREDICTOR_CACHE/features)")
    p.add_argument("--limit", type=positive_int, default=None, help="featurize at most this many chains of the input")
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/N",
                   help="only chains with index %% N == i (run N processes in parallel; default 0/1: all chains)")


def _read_input(path: str):
    """[(where, chain, reasoning_ids or None)] from a ranked or chains file (format of the first record)."""
    from ..chains import Chain, iter_jsonl, read_chains
    from ..ranked import record_chain, validate_ranked

    first = next((obj for _, obj in iter_jsonl(path)), None)
    if isinstance(first, dict) and "reasoning_ids" in first and "ranks" in first:
        out = []
        for lineno, obj in iter_jsonl(path):
            where = f"{path}:{lineno}"
            validate_ranked(obj, where)
            out.append((where, record_chain(obj), list(obj["reasoning_ids"])))
        return out, True
    chains: list[Chain] = read_chains(path)
    return [(f"{path}:{c.id}", c, None) for c in chains], False


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..feature_cache import FeatureCache
    from ..features import FeatureSpec
    from ..layout import ChainError, encode_chain

    if not Path(args.inp).is_file():
        raise FileNotFoundError(f"{args.inp}: no such file")
    spec = FeatureSpec(groups=tuple(args.groups),
                       per_head=not args.no_per_head)
    items, ranked = _read_input(args.inp)
    if args.limit is not None:
        items = items[: args.limit]
    i, n = args.shard
    items = [it for k, it in enumerate(items) if k % n == i]
    lm = load_lm_from_args(args)
    cache = FeatureCache(args.cache)
    skipped = []
    todo = []
    for where, chain, ids in items:
        try:
            lay = encode_chain(lm.tokenizer, chain, lm.max_length)
        except ChainError as e:
            skipped.append(str(e))
            continue
        if ids is not None and lay.reasoning_ids != ids:
            raise ValueError(f"{where}: field 'reasoning_ids' differs from this LM's tokenization of the reasoning "
                             f"(chain {chain.id!r} was labeled with another tokenizer?); use the labeling LM")
        todo.append((chain, lay.n))
    print(f"{len(items)} chains ({'ranked' if ranked else 'chains'} file), {len(todo)} to featurize, "
          f"{len(skipped)} skipped; groups {','.join(spec.groups)}; cache {cache.directory(lm.fingerprint, spec)}",
          file=sys.stderr)
    bar = tqdm(total=sum(k for _, k in todo), unit="tok", desc="featurizing", dynamic_ncols=True)
    from ..chain_lists import ChainFailure, map_chains_batched
    from ..training_data import FEATURE_GROUP

    for a in range(0, len(todo), FEATURE_GROUP):  # resumable per group: finished tables are in the cache
        group = todo[a:a + FEATURE_GROUP]
        # a chain that fits the context but not with the probe its features need is skipped, the
        # rest of its group still featurized (one at a time after such a failure)
        out, _ = map_chains_batched(lambda cs: cache.features_for_many(lm, cs, spec), [c for c, _ in group], "skip")
        skipped.extend(f.error.removeprefix(f"chains[{f.index}]: ") for f in out if isinstance(f, ChainFailure))
        bar.update(sum(k for _, k in group))
        bar.set_postfix(chain=group[-1][0].id, cached=cache.hits)
    bar.close()
    for reason in skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    print(f"featurized {cache.misses} chains, {cache.hits} already cached, {len(skipped)} skipped; "
          f"tables in {cache.directory(lm.fingerprint, spec)}", file=sys.stderr)
    return 0
