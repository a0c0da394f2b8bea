"""Train rank predictors on greedy-ranked chains and save the best one as a predictor directory.

Steps: read the ranked JSONL; load the LM it was labeled with; split chains (never tokens) into
train/val/test; compute (or load cached) features of every chain, plus pruned states of the
training chains (--states); train each regressor (--regressors), early-stopping and selecting
on validation per-chain Spearman; compare with single-signal baselines; evaluate the selected
predictor on the test chains (optionally with --refresh re-scoring); save OUT/predictor,
OUT/models/KIND, OUT/metrics.json and print a summary table.

    predictor train --data data/ranked/gsm8k-smollm2-joint.jsonl --out runs/train
    predictor train --regressors lgbm-lambdarank --states 0 --refresh 4,10 --out runs/quick
"""
from __future__ import annotations

import argparse

from .common import comma_list, file_list, positive_int

HELP = "train regressors on ranked chains, select on validation, save a predictor directory"


_floats = comma_list(float)  # kept for importers (finetune)
_ints = comma_list(int)
_names = comma_list(str)


class _ConfigFile(argparse.Action):
    """--config FILE: a JSON object of this command's options ({"extra-train": "...", "groups": [...],
    "no-ensemble": true, ...}), read in place as if its options stood there on the command line."""

    def __call__(self, parser, namespace, path, option_string=None):
        try:
            argv = config_argv(path)
        except ValueError as e:
            parser.error(str(e))
        parser.parse_args(argv, namespace)


# append options: a --config list gives the option once per item
REPEATED = ("--regressor-param", "--domain-data", "--extra-train")


def config_argv(path: str) -> list[str]:
    """The command-line tokens of a --config JSON file: "key": value -> --key value (lists comma-joined,
    except for repeatable options such as "regressor-param", given once per item; true -> the bare flag,
    false / null -> nothing)."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"--config {path}: {e}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"--config {path}: expected a JSON object of options")
    argv: list[str] = []
    for key, value in cfg.items():
        if key.startswith("_"):  # "_comment" and the like
            continue
        opt = "--" + key.lstrip("-").replace("_", "-")
        if value is True:
            argv.append(opt)
        elif opt in REPEATED and isinstance(value, list):  # one option per item, never comma-joined
            for item in value:
                argv += [opt, str(item)]
        elif value is not False and value is not None:
            argv += [opt, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return argv


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..training import TrainConfig
    from .common import add_threads_argument, config_defaults

    d = config_defaults(TrainConfig)
    p.add_argument("--config", action=_ConfigFile, metavar="JSON",
                   help="a JSON object of these options (configs/smollm2-joint.json: the shipped predictor's "
                        "run, `make train`); read where it stands, so options after it override it")
    p.add_argument("--data", default=d["data"], help="ranked JSONL from `predictor label` (default: %(default)s)")
    p.add_argument("--domain-data", type=file_list, action="extend", default=list(d["domain_data"]),
                   metavar="FILE,...",
                   help="ranked JSONL of other chain styles (e.g. data/ranked/aqua/aqua-smollm2-joint.jsonl), split "
                        "into train/val/test by the same id hash as --data; validation mixes all chains, and the "
                        "table adds each domain's test chains on their own (domain = a record's `domain` field, "
                        "else its id's prefix before '-'). Repeatable: every occurrence adds files (a --config's "
                        "and the command line's add up); a path holding a comma is read whole when that file exists")
    p.add_argument("--extra-train", type=file_list, action="extend", default=list(d["extra_train"]), metavar="FILE,...",
                   help="other ranked JSONL whose chains are used for training only, never split into val/test "
                        "(chains also in --data or --domain-data are dropped from them); full chains only unless "
                        "--extra-states. Repeatable like --domain-data (a --config's and the command line's add up)")
    p.add_argument("--extra-states", action="store_true",
                   help="also train on the pruned --states of the --extra-train chains (one pass per state)")
    p.add_argument("--policy-states", default=None, metavar="FILE",
                   help="state records from `predictor label-states` (a predictor's own pruned states, labeled "
                        "exactly) used as extra training examples; states of val/test chains are ignored")
    p.add_argument("--out", default=d["out"], help="run directory for models, metrics.json (default: %(default)s)")
    p.add_argument("--model", default=None, metavar="M",
                   help="the LM the chains were labeled with: HF dir or hub id (default: the embedded SmolLM2)")
    p.add_argument("--device", default=None, help="LM device: cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--objective", default=d["objective"], choices=("joint", "answer"),
                   help="which labels of the ranked file to train on (default: %(default)s)")
    p.add_argument("--regressors", type=_names, default=d["regressors"],
                   help="comma-separated among lgbm-regression, lgbm-lambdarank, lgbm-xendcg, mlp, sequence, ridge, "
                        "ensemble (default: %(default)s; their rank-average ensemble is also tried unless --no-ensemble)")
    p.add_argument("--regressor-param", action="append", default=[], metavar="KIND:NAME=VALUE",
                   help="one constructor argument of one regressor kind, repeatable; VALUE is read as JSON when it "
                        "parses, else as text (e.g. lgbm-lambdarank:levels=100, sequence:hidden=256)")
    p.add_argument("--no-ensemble", action="store_true",
                   help="do not try the rank-average ensemble of the trained regressors")
    p.add_argument("--states", type=_floats, default=d["states"],
                   help="pruned-state fractions used as extra training examples (one forward pass each; "
                        "default: %(default)s; '0' = full chains only)")
    p.add_argument("--groups", type=_names, default=None,
                   help="feature groups among attention, probe, logits, position, lexical, pooled_attention, hidden, "
                        "local, loo (default: attention,probe,logits,position,lexical; pooled_attention, logits, "
                        "position, lexical, local and loo only make an LM-agnostic predictor; loo, greedy's exact "
                        "leave-one-out gains, costs n candidate scorings per chain and state, about n^2/2 LM tokens)")
    p.add_argument("--no-per-head", action="store_true", help="only layer/chain aggregates of attention stats")
    p.add_argument("--split", type=_floats, default=d["fractions"], metavar="TR,VA,TE",
                   help="train,val,test fractions of chains (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d["seed"], help="split and training seed (default: %(default)s)")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N chains of the file")
    p.add_argument("--refresh", type=_ints, default=d["refresh"], metavar="K,...",
                   help="also evaluate the selected predictor with K forward passes per chain (e.g. 4,10; default: one pass only)")
    p.add_argument("--ship", action="store_true",
                   help="also write the selected predictor to predictor/pretrained/NAME/ (--ship-name)")
    p.add_argument("--ship-name", default=d["ship_name"],
                   help="folder name under predictor/pretrained/ for --ship (default: %(default)s)")
    p.add_argument("--cache", default=None, help="feature cache root (default: $PREDICTOR_CACHE/features)")
    add_threads_argument(p, also=" (LightGBM's too when given; else LightGBM runs 1)")
    p.add_argument("--max-epochs", type=int, default=None, help="neural regressors: epoch cap (default 100)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _constructor_args(kind: str) -> set[str]:
    return set(_constructor_defaults(kind))


def _constructor_defaults(kind: str) -> dict[str, object]:
    """{argument: default} of a regressor kind's __init__, less the arguments the kind fixes."""
    import inspect

    from ..regressors.registry import REGISTRY, regressor_class

    sig = inspect.signature(regressor_class(kind).__init__)
    return {n: p.default for n, p in sig.parameters.items() if n != "self" and n not in REGISTRY[kind][2]}


def _type_error(default: object, value: object) -> str | None:
    """Why `value` cannot stand for an argument whose default is `default` (None when it can)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "text"
    if isinstance(default, (tuple, list)):
        return None if isinstance(value, list) else "a JSON list, e.g. [1,2]"
    return None


def check_regressor_params(kind: str, params: dict[str, object]) -> None:
    """Build the regressor once with `params` so that a bad value fails now, naming --regressor-param,
    not after the LM and the features (ValueError)."""
    from ..regressors import make_regressor

    defaults = _constructor_defaults(kind)
    for name, value in params.items():
        want = _type_error(defaults[name], value)
        if want:
            raise ValueError(f"--regressor-param {kind}:{name}={json_text(value)}: expected {want}")
    try:
        make_regressor(kind, **params)
    except (ValueError, TypeError) as e:
        raise ValueError(f"--regressor-param {kind}: {e}") from None


def json_text(value: object) -> str:
    import json

    return json.dumps(value) if not isinstance(value, str) else value


def parse_regressor_param(text: str) -> tuple[str, str, object]:
    """'KIND:NAME=VALUE' -> (kind, name, value), VALUE read as JSON when it parses (100, 0.5, true, [1,2]),
    else kept as text. Raises ValueError naming the option when the form is wrong."""
    import json

    kind, sep, rest = text.partition(":")
    name, eq, raw = rest.partition("=")
    if not (sep and eq and kind and name.isidentifier()):
        raise ValueError(f"--regressor-param {text!r}: expected KIND:NAME=VALUE, e.g. lgbm-lambdarank:levels=100")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return kind, name, value


def config_from_args(args: argparse.Namespace):
    from ..regressors import REGRESSOR_KINDS
    from ..training import TrainConfig

    bad = [k for k in args.regressors if k not in REGRESSOR_KINDS]
    if bad or not args.regressors:
        raise ValueError(f"unknown regressors {bad}; choose from {', '.join(REGRESSOR_KINDS)}")
    if len(args.split) != 3:
        raise ValueError("--split needs three fractions: train,val,test")
    params: dict[str, dict] = {}
    if args.max_epochs is not None:
        params = {k: {"max_epochs": args.max_epochs} for k in ("mlp", "sequence")}
    for kind, name, value in map(parse_regressor_param, args.regressor_param):
        if kind not in REGRESSOR_KINDS:
            raise ValueError(f"--regressor-param {kind}:{name}: unknown regressor {kind!r}; choose from "
                             f"{', '.join(REGRESSOR_KINDS)}")
        accepted = _constructor_args(kind)
        if name not in accepted:
            raise ValueError(f"--regressor-param {kind}:{name}: {kind} takes no argument {name!r}; it takes "
                             f"{', '.join(sorted(accepted))}")
        if kind not in args.regressors:  # kept (a --config may name more kinds), but said: it does nothing
            import sys

            print(f"predictor train: warning: --regressor-param {kind}:{name} is unused: {kind} is not among "
                  f"--regressors ({', '.join(args.regressors)})", file=sys.stderr)
        params.setdefault(kind, {})[name] = value
    for kind in {k for k, _, _ in map(parse_regressor_param, args.regressor_param)}:
        check_regressor_params(kind, params[kind])
    return TrainConfig(data=args.data, domain_data=tuple(args.domain_data), extra_train=tuple(args.extra_train),
                       extra_states=args.extra_states,
                       policy_states=args.policy_states, out=args.out,
                       model=args.model, device=args.device, objective=args.objective,
                       regressors=tuple(args.regressors), states=tuple(args.states),
                       groups=tuple(args.groups) if args.groups else None, per_head=not args.no_per_head,
                       fractions=tuple(args.split), seed=args.seed, limit=args.limit, refresh=tuple(args.refresh),
                       ship=args.ship, ship_name=args.ship_name, cache=args.cache, threads=args.threads, params=params,
                       progress=not args.no_progress, ensemble=not args.no_ensemble)


def run(args: argparse.Namespace) -> int:
    from ..training import run_training

    run_training(config_from_args(args))
    return 0
