"""`predictor` command line: one subcommand per module in predictor/commands/."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> module in predictor.commands (each defines `add_arguments(parser)` and `run(args) -> int`)
COMMANDS = {
    "import-gsm8k": "import_gsm8k",
    "label": "label",
    "label-states": "label_states",
    "featurize": "featurize",
    "merge-ranked": "merge_ranked",
    "check-data": "check_data",
    "verify-ranked": "verify_ranked",
    "train": "train",
    "finetune": "finetune",
    "evaluate": "evaluate",
    "predict": "predict",
    "prune": "prune",
    "select-prune": "select_prune",
    "show": "show",
    "demo": "demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predictor",
        description="Predict the greedy pruning order of reasoning tokens from one LM forward pass.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, mod_name in COMMANDS.items():
        mod = importlib.import_module(f"predictor.commands.{mod_name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away


def closed_pipe() -> int:
    """The reader of our output went away (`predictor prune --out - | head`): stop without a traceback, as
    Python's docs advise (their "Note on SIGPIPE"): standard output goes to devnull, so that the flush at
    exit raises no second BrokenPipeError. Returns the exit status."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # no real standard output (replaced, closed): nothing to flush there
        return SIGPIPE_EXIT
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
    return SIGPIPE_EXIT


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()  # a reader gone by now raises here, not at exit
        return status
    except KeyboardInterrupt:
        print("interrupted; finished records are kept and a re-run resumes", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return closed_pipe()
    except (ValueError, FileNotFoundError, RuntimeError) as e:  # user-facing errors, no traceback
        from .predictor_dir import PredictorMismatchError, cli_mismatch_error

        if isinstance(e, PredictorMismatchError):  # its remedies as options (--no-check-lm), not API arguments
            e = cli_mismatch_error(e)
        print(f"predictor {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
