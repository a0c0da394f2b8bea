"""`predictor` command line: one subcommand per module in predictor/commands/."""
from __future__ import annotations

import argparse
import importlib
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished records are kept and a re-run resumes", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as e:  # user-facing errors, no traceback
        from .predictor_dir import PredictorMismatchError, cli_mismatch_error

        if isinstance(e, PredictorMismatchError):  # its remedies as options (--no-check-lm), not API arguments
            e = cli_mismatch_error(e)
        print(f"predictor {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
