"""The settings that `predict` and `prune` store in every record, said in their command-line options: what
an existing --out was written with against what this run asks, and the option that resumes it, for the
refusal to resume (`jsonl_io.check_settings`); and how messages name an LM by its fingerprint."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..jsonl_io import SettingWords

_BUDGETS = (("keep", "--keep"), ("keep_tokens", "--keep-tokens"), ("threshold", "--threshold"))
_VALUED = {"refresh": "--refresh", "gap_cost": "--gap-cost", "position_weight": "--position-weight",
           "protect": "--protect"}  # settings.<key> -> its option, which takes a value


def lm_words(fingerprint: Any, name: str | None = None) -> str:
    """An LM as messages name it: "LM 'gemma-3-270m.Q4_K_M' (fingerprint cc48c957381e)"; the name (when
    not given) is the one a shipped predictor stores for that fingerprint, else only the fingerprint."""
    from ..predictor_dir import lm_name_for

    name = name or lm_name_for(str(fingerprint))
    return f"LM {name!r} (fingerprint {fingerprint})" if name else f"the LM of fingerprint {fingerprint}"


def model_option(fingerprint: Any) -> str:
    """How to resume with the LM of `fingerprint`: "pass --model gemma3-270m" for an embedded LM a
    shipped predictor names, else "pass the --model it was written with"."""
    from ..lm import EMBEDDED_LMS
    from ..predictor_dir import lm_name_for

    name = lm_name_for(str(fingerprint))
    key = next((k for k, e in EMBEDDED_LMS.items() if e.name == name and k != "default"), None)
    return f"pass --model {key}" if key else "pass the --model it was written with"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _scorer(name: Any) -> str:
    from ..scorers import SCORERS

    if name is None:
        return "no scorer"
    return f"--scorer {name}" if name in SCORERS else f"--predictor {name}"


def _budget(settings: Mapping[str, Any]) -> str:
    """The budget option of prune's settings: "--keep 0.5", "--keep-tokens 10", "--threshold 0.2"."""
    return next((f"{opt} {_num(settings[k])}" for k, opt in _BUDGETS if settings.get(k) is not None), "no budget")


def _option(key: str, value: Any) -> str:
    """One of prune's settings as its option: "--gap-cost 1", "--step-aware", "no --protect"."""
    if key == "step_aware":
        return "--step-aware" if value else "no --step-aware"
    return f"{_VALUED[key]} {_num(value)}" if value is not None else f"no {_VALUED[key]}"


def _resume(option: str) -> str:
    return f"drop {option[3:]}" if option.startswith("no ") else f"pass {option}"


def predictor_words(field: str, record: Mapping[str, Any], run: Mapping[str, Any],
                    run_lm: str | None = None) -> SettingWords | None:
    """The words of the setting `field` (as `jsonl_io.setting_difference` names it: "scorer", "lm",
    "refresh", "settings.keep", ...) that differs between a predict / prune record and this run's
    settings `run` (run_lm: the name of this run's LM); None for a field without words (the message
    then names the field alone)."""
    have, want = record.get(field.split(".")[0]), run.get(field.split(".")[0])
    if field == "scorer":
        return SettingWords(_scorer(have), _scorer(want), f"pass {_scorer(have)}" if have is not None else None)
    if field == "lm":
        return SettingWords(lm_words(have), lm_words(want, run_lm), model_option(have))
    if field == "refresh":
        return SettingWords(f"--refresh {have}", f"--refresh {want}", f"pass --refresh {have}")
    if field in ("gap_cost", "position_weight"):  # the value used: the option, else the predictor's default
        what = field.replace("_", " ")
        return SettingWords(f"{what} {_num(have)}", f"{what} {_num(want)} (the predictor's prune defaults "
                                                    "changed since)", None)
    key = field.partition(".")[2]
    if not (isinstance(have, Mapping) and isinstance(want, Mapping)) or "." in key:
        return None
    if key in dict(_BUDGETS):
        return SettingWords(_budget(have), _budget(want), _resume(_budget(have)))
    if key in ("gap_cost", "position_weight") and None not in (have.get(key), want.get(key)):
        # the values used: the option, else the predictor's prune default (null only in older files: as given)
        old, new = _option(key, have.get(key)), _option(key, want.get(key))
        return SettingWords(f"{old} (given, or the predictor's prune default)",
                            f"{new} (given, or the predictor's prune default)", _resume(old))
    if key == "step_aware" or key in _VALUED:
        old, new = _option(key, have.get(key)), _option(key, want.get(key))
        return SettingWords(old, new, _resume(old))
    return None
