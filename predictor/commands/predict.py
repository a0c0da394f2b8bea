"""Predict the greedy pruning ranks of every chain in a JSONL file, with one forward pass per chain (a
predictor with greedy's exact first step as features, --predictor smollm2-joint-loo, adds n candidate
scorings per chain of n tokens, ~n^2/2 LM tokens; a note on stderr says so at the start).

Writes one JSON line per chain: id, n, ranks (1 = pruned first), order (token indices in pruning
order), tokens, scorer, lm (fingerprint), refresh. `tokens` holds the exact text of each of the n
reasoning tokens: "".join(tokens) is the decoded reasoning (with the shipped LM's tokenizer: the
input's reasoning without its surrounding whitespace). A CJK character or emoji whose UTF-8 bytes are
spread over several tokens is the text of the token that completes it; the tokens before it get ""
(or the whole characters they hold), never U+FFFD.

The ranking comes from the shipped pretrained predictor (default), a trained predictor directory
(--predictor DIR) or any registered scorer (--scorer NAME: baselines, or `greedy` for the exact
oracle). A re-run on an existing --out with other settings (scorer, LM, refresh) is refused instead
of silently reusing the old records.

Streaming and resumable: chains are read line by line and each record is appended (fsynced) to
OUT.partial; a re-run skips finished ids, and OUT is replaced atomically once the input is done.
The input is never overwritten. Malformed lines (not valid UTF-8, invalid JSON, bad fields), empty
reasonings and chains longer than the LM's context (with the probe, for predictors that read it)
are skipped and counted with their reasons; a file none of whose lines can be read is an error.
Fields of the input other than id/question/reasoning/answer are copied to the output records, except
the greedy search's own fields of a ranked input (`predictor label` output: trajectory, seconds,
objective, stride, ...; `ranked.LABEL_FIELDS`), which describe greedy's run, not these ranks.
Every record stores `chain_hash` (the content hash of its input chain): a re-run refuses to resume
a record whose input chain has changed since.
"""
from __future__ import annotations

import argparse

from ..engines.record_io import add_format_arguments
from .common import add_predictor_arguments

HELP = "rank the reasoning tokens of a chains file with a predictor or scorer (resumable)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", required=True,
                   help="chains JSONL or JSON array (chain or messages records, or --field); - reads standard input")
    p.add_argument("--out", required=True,
                   help="ranks JSONL (resumes if OUT.partial or OUT exists); - (or a pipe) streams, no resume")
    add_format_arguments(p)
    add_predictor_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ..engines.jobs import PredictJob
    from ..engines.local import run_job

    return run_job(PredictJob(args), args)
