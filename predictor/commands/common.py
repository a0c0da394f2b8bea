"""Arguments shared by several subcommands."""
from __future__ import annotations

import argparse

from ..engines.cli_args import BATCH, add_engine_arguments


MATMUL_COMMANDS = "label, label-states, featurize, verify-ranked"  # where --matmul acts: the LM labels


def positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {n}")
    return n


def add_threads_argument(p: argparse.ArgumentParser, default: int | None = None, also: str = "") -> None:
    """--threads, settled by `runtime.set_threads` (default None: the idle cores)."""
    from ..runtime import THREADS_MEASURED

    when = (f"default: {default}" if default is not None else
            "default: the idle cores, i.e. usable CPUs minus the 1-minute load average, at least 1; "
            "OMP_NUM_THREADS if set")
    p.add_argument("--threads", type=positive_int, default=default, metavar="N",
                   help=f"torch CPU threads{also} ({when}). torch's own default of one per core collapses "
                        f"beside busy processes: `predictor label`, one 30-token chain, 2 cores, {THREADS_MEASURED}")


class _IgnoredMatmul(argparse.Action):
    """--matmul where it never acted (predict, prune, evaluate, show): accepted, with a deprecation warning."""

    def __call__(self, parser, namespace, values, option_string=None):
        import sys

        print(f"{parser.prog}: warning: --matmul is deprecated here and ignored (it never acted in this command: "
              f"one forward pass per chain through torch's path, as the predictor was trained); it acts in "
              f"{MATMUL_COMMANDS}", file=sys.stderr)


def add_lm_arguments(p: argparse.ArgumentParser, matmul: bool = True) -> None:
    """--model, --device, --threads; --matmul where it acts (matmul=True: the commands whose LM labels),
    else a hidden, deprecated --matmul that warns and is ignored."""
    from ..runtime import MATMUL_CHOICES

    p.add_argument("--model", default=None, metavar="M",
                   help="HF model dir or hub id (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    add_threads_argument(p)
    if not matmul:
        p.add_argument("--matmul", choices=MATMUL_CHOICES, action=_IgnoredMatmul, help=argparse.SUPPRESS)
        return
    p.add_argument("--matmul", choices=MATMUL_CHOICES, default="onednn",
                   help="CPU float32 linear layers: onednn (default; greedy steps 1.05-1.10x faster than "
                        "torch's MKL on a quiet AMD EPYC, 1.7x with both cores loaded; differs from it by "
                        "float32 round-off) or default "
                        "(torch's MKL). Ignored on GPU and for other dtypes")


# the costlier shipped tier, as --predictor's help says it (docs/quality.md §14)
LOO_PREDICTOR = "smollm2-joint-loo"
LOO_HELP = (f"{LOO_PREDICTOR} adds greedy's exact first step as features: n extra candidate scorings per chain "
            "(about 16-19 s for a 100-token chain on one CPU thread against ~1-7 s for one pass; cost grows about "
            "n^2/2 LM tokens), +0.02 to +0.06 Spearman with greedy on held-out chains (docs/quality.md §14)")


def predictor_help() -> str:
    """--predictor's help: the predictors shipped in predictor/pretrained (`shipped_predictors`) and the choice."""
    from ..predictor_dir import LEARNED_ALIAS, PRETRAINED_NAME, shipped_predictors

    names = list(shipped_predictors())
    return (f"trained predictor directory or shipped name ({', '.join(names) or 'none shipped'}; "
            f"{LEARNED_ALIAS!r} is an older name of {PRETRAINED_NAME}); default: the shipped one-pass predictor "
            "trained for --model" + (f". {LOO_HELP}" if LOO_PREDICTOR in names else ""))


def add_predictor_arguments(p: argparse.ArgumentParser) -> None:
    """--scorer / --predictor / --refresh and the LM options (shared with `predictor prune`)."""
    from ..pruning import PruneOptions
    from ..scorers import DIRECTORY_SCORERS, SCORERS

    g = p.add_mutually_exclusive_group()
    g.add_argument("--scorer", choices=[s for s in SCORERS if s not in DIRECTORY_SCORERS],
                   help="rank with a registered scorer instead of a learned predictor")
    g.add_argument("--predictor", metavar="DIR", help=predictor_help())
    p.add_argument("--refresh", type=int, default=PruneOptions.refresh, metavar="K",
                   help="forward passes per chain: re-score the survivors K times (default %(default)s)")
    p.add_argument("--no-check-lm", action="store_true",
                   help="use a predictor with an LM other than the one it was trained for (e.g. a fine-tune of it); "
                        "the LM must still have the same layers x heads: another shape is refused before any chain")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="process at most this many input chains")
    p.add_argument("--batch", type=int, default=BATCH, metavar="N",
                   help=f"chains read and ranked together, several per forward pass (default {BATCH}; "
                        "the pass size follows a token budget; --engine local only: Ray workers rank "
                        "one chain at a time)")
    add_lm_arguments(p, matmul=False)
    add_engine_arguments(p)


def comma_list(item: type = str):
    """An argparse type: "a,b,c" -> [item(a), item(b), item(c)] (blanks dropped, items stripped); the one
    comma-list reader of the command line."""
    what = {float: "numbers", int: "integers"}.get(item, "values")

    def parse(text: str) -> list:
        try:
            return [item(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None

    parse.__name__ = f"comma-separated {what}"
    return parse


def file_list(text: str) -> list[str]:
    """An argparse type for FILE,...: comma-separated paths, unless the whole text names an existing file
    (a path that itself holds a comma)."""
    from pathlib import Path

    return [text] if Path(text).is_file() else comma_list(str)(text)


def config_defaults(cls) -> dict:
    """{field: default} of a config dataclass (TrainConfig, FinetuneConfig, ...), for argparse defaults."""
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/N' -> (i, N) with 0 <= i < N."""
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like i/N, got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= i < N")
    return i, n
