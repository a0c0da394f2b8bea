"""Label chains with the exact greedy pruning order (the oracle the predictors learn).

Writes one ranked record per chain (schema: shared/DESIGN.md), appended and fsynced line by line.
Re-running with the same --out resumes: finished ids are skipped, and a line cut by a kill is
dropped, so Ctrl-C loses at most the chain in progress. A re-run refuses to resume a record whose
input chain has changed since (question, reasoning or answer differ). Chains that cannot be scored
(empty reasoning, longer than the LM's context, more reasoning tokens than --max-tokens) are skipped
with a counted reason. The progress bar counts the search's cost (`engines.label_job.search_cost`, ~n^3/6 token
positions per chain of n reasoning tokens), so its time estimate holds when long chains follow short ones.

--stride K > 1 deletes the K best tokens per step: about K times faster, but approximate.
--budget F < 1 runs the approximate search of `predictor.greedy.approximate` at about F x the exact
search's LM tokens: every step re-scores exactly, on the current kept sequence, the tokens that a
one-pass predictor (--proposer, default the LM's shipped one, re-run on the survivors) and the stale
priorities rank first-to-delete, as many as the step's share of the budget pays for, and deletes the
best fresh gain (--proposer none, or an LM without a shipped predictor: the lazy search without one).
Measured agreement with the exact order (mean per-chain Spearman [95% CI], docs/approximate_greedy.md
"The long test chains, run once"), on 16 held-out GSM8K chains of 100-117 tokens: --budget 0.03 0.54
[0.46, 0.62] for 3.7% of the exact tokens, 0.1 0.49 [0.39, 0.59] (9.6%), --budget 0.1 --proposer none
0.61 [0.52, 0.68] (8.6%); one pass 0.56 [0.48, 0.63]: no setting agrees with greedy's order clearly
better than one pass. What --budget 0.1 keeps is about as likely as greedy's (objective regret -9 / -6 /
-14 nats at keep 0.25 / 0.5 / 0.75, the first two within noise of 0; one pass -40 to -51 nats): use
it to prune, not to reproduce greedy's order. On 30-64-token chains the budget barely pays for keeping
the sequence exact below about 0.3 (see the doc).
--shortlist K runs the refreshed-shortlist search instead: every step re-scores exactly the K highest
(stale) priorities, the K tokens a one-pass predictor (--proposer, default the LM's shipped one,
re-run on the survivors every --propose-every steps) ranks first, and the last deletion's neighbours,
then deletes the best fresh gain. With K = 4 it agreed with exact greedy at 0.85 [0.80, 0.89] on 30
GSM8K test chains of 32-64 tokens (one pass: 0.67; paired +0.18 [+0.13, +0.23]) for about 0.73 of the exact
search's tokens there, and at 0.72 [0.60, 0.84] on the 5 long chains for 0.25 of them (one pass 0.50):
the cheaper share grows with the chain's length. Records carry 'shortlist', 'propose_every', 'proposer',
'proposer_fingerprint' (a trained proposer's files, not its folder name) and 'lm_tokens'.
--shortlist K --proposer none re-scores only the K highest priorities and the neighbours, starting from
the free local gains (no predictor: any LM). With K = 4, on 25 held-out GSM8K chains of 100-117
tokens: 0.71 [0.65, 0.76] for 18% of the exact search's tokens (one pass 0.59; paired +0.12 [+0.06,
+0.18]; kept text within noise of greedy's likelihood at keep 0.25 and 0.5), the best measured there; on 9 validation chains
of 40-64 tokens 0.79, tied with --shortlist 4 (0.81) at 38% of the exact tokens against 64%.
"""
from __future__ import annotations

import argparse

from ..engines.cli_args import add_engine_arguments
from .common import add_lm_arguments, parse_shard, positive_int

HELP = "run the greedy search (exact, or approximate with --budget / --shortlist / --stride) on a chains file -> ranked JSONL (resumable)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", required=True, help="chains JSONL (id, question, reasoning, answer)")
    p.add_argument("--out", required=True,
                   help="ranked JSONL to append to (resumes if it exists; must then be a ranked file written by "
                        "the same search; missing directories are created)")
    add_lm_arguments(p)
    p.add_argument("--objective", choices=["joint", "answer"], default="joint",
                   help="joint = log P(R_kept, A | Q) (default); answer = log P(A | Q, R_kept)")
    p.add_argument("--stride", type=int, default=1, help="tokens deleted per step; >1 is approximate (default 1)")
    p.add_argument("--budget", type=float, default=1.0, metavar="F",
                   help="share of the exact search's LM tokens to spend, in (0, 1]; 1 (default) is the exact "
                        "search, below 1 the approximate search (shortlists from --proposer re-scored exactly "
                        "within the budget; records carry 'budget', 'proposer', 'proposer_fingerprint' and "
                        "'lm_tokens'). On short chains (tens of tokens) the search's fixed upkeep, keeping the "
                        "current sequence exact, can exceed F (e.g. 0.55-0.85 of the exact search's tokens at "
                        "--budget 0.3 on 10-token chains): the run's last line says what was spent. Agreement "
                        "with exact greedy: see below")
    p.add_argument("--shortlist", type=positive_int, default=None, metavar="K",
                   help="refreshed-shortlist search (see below): K stale top priorities + the K first-to-delete "
                        "tokens of a one-pass predictor re-scored exactly each step (measured with K = 4)")
    p.add_argument("--proposer", default=None, metavar="DIR",
                   help="with --shortlist or --budget: the one-pass predictor (directory or scorer name) that "
                        "proposes tokens (default: the shipped predictor of the LM); 'none': with --budget the "
                        "lazy search, with --shortlist the K highest priorities only (no predictor)")
    p.add_argument("--propose-every", type=positive_int, default=None, metavar="R",
                   help="with --shortlist: steps between proposer runs on the survivors (default: 4)")
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/N",
                   help="label only chains with index %% N == i (run N processes in parallel; default 0/1: all chains)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="label at most this many chains of the input")
    p.add_argument("--batch-tokens", type=positive_int, default=None, metavar="N",
                   help="candidate tokens per forward, >= 1 (default: auto)")
    p.add_argument("--max-tokens", type=int, default=None, metavar="N",
                   help="skip chains with more than N reasoning tokens (the search's cost grows ~n^3)")
    add_engine_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ..engines.label_job import LabelJob
    from ..engines.local import run_job

    return run_job(LabelJob(args), args)
