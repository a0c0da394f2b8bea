"""Ranked records (the labeler's output, one JSON object per line) and their validation."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .chains import Chain, ChainFormatError, iter_jsonl
from .ranks import ranks_from_order

if TYPE_CHECKING:
    from .greedy import GreedyResult

RANKED_FIELDS = {
    "id": str, "question": str, "reasoning": str, "answer": str, "lm": str, "objective": str, "stride": int,
    "prompt_ids": list, "reasoning_ids": list, "answer_ids": list, "tokens": list, "order": list,
    "ranks": list, "trajectory": list, "full_objective": float, "seconds": float,
}
OPTIONAL_RANKED_FIELDS = ("prompt_format", "lm_tokens", "device", "matmul")  # what `ranked_record` may add
# the approximate search's settings, stored in its records (`predictor label --budget/--shortlist/--proposer`)
SEARCH_FIELDS = ("stride", "budget", "shortlist", "propose_every", "proposer", "proposer_fingerprint")
# every field a label record adds to its chain's id, question, reasoning and answer: the search's own output
# and settings; `predict` drops them from a ranked input (they describe greedy's run, not predicted ranks)
LABEL_FIELDS = tuple(dict.fromkeys(k for k in (*RANKED_FIELDS, *OPTIONAL_RANKED_FIELDS, *SEARCH_FIELDS)
                                   if k not in ("id", "question", "reasoning", "answer")))


def ranked_record(chain: Chain, res: GreedyResult, lm_fingerprint: str, objective: str, stride: int,
                  tokenizer, device: str | None = None, matmul: str | None = None) -> dict[str, Any]:
    """The ranked record of DESIGN.md, plus `prompt_format` (`layout.prompt_format`: "chat", "plain+bos"
    or "plain"), `lm_tokens` (LM tokens the search ran, when counted); the optional extra fields `device` ("cpu", "cuda") and `matmul` ("onednn" when the
    CPU linears ran through oneDNN) say how `seconds` was measured. `tokens` holds each reasoning token's exact
    text (`token_text.token_pieces`, as `predict` writes it: a CJK character or emoji spread over several
    byte-level tokens goes to the token that completes it, never U+FFFD)."""
    from .layout import prompt_format
    from .token_text import token_pieces

    lay = res.layout
    rec = {
        "id": chain.id, "question": chain.question, "reasoning": chain.reasoning, "answer": chain.answer,
        "lm": lm_fingerprint, "objective": objective, "stride": stride,
        "prompt_ids": lay.prompt_ids, "reasoning_ids": lay.reasoning_ids, "answer_ids": lay.answer_ids,
        "tokens": token_pieces(tokenizer, lay.reasoning_ids),
        "order": res.order, "ranks": res.ranks,
        "trajectory": [round(x, 6) for x in res.trajectory], "full_objective": round(res.full_objective, 6),
        "seconds": round(res.seconds, 3), "prompt_format": prompt_format(tokenizer),
    }
    if res.lm_tokens is not None:
        rec["lm_tokens"] = int(res.lm_tokens)
    if device is not None:
        rec["device"] = device
    if matmul is not None:
        rec["matmul"] = matmul
    return rec


def not_ranked(obj: Mapping[str, Any]) -> str | None:
    """None for a record with every field of a ranked record (`RANKED_FIELDS`), else what is missing and
    which of this tool's outputs the record looks like, e.g. "missing 'prompt_ids'; looks like a prune
    output", for refusing to append ranked records to another kind of file."""
    missing = next((k for k in RANKED_FIELDS if k not in obj), None)
    if missing is None:
        return None
    looks = ("a prune output" if "kept" in obj and "original_reasoning" in obj
             else "a predict output" if "ranks" in obj and "scorer" in obj
             else "a chains file" if {"question", "reasoning", "answer"} <= set(obj) and "lm" not in obj
             else None)
    return f"missing '{missing}'" + (f"; looks like {looks}" if looks else "")


def validate_ranked(obj: Mapping[str, Any], where: str) -> None:
    """Raise ChainFormatError naming `where` and the field if a ranked record is malformed."""
    if not isinstance(obj, Mapping):
        raise ChainFormatError(f"{where}: expected a JSON object")
    for key, typ in RANKED_FIELDS.items():
        if key not in obj:
            raise ChainFormatError(f"{where}: missing field '{key}'")
        ok = isinstance(obj[key], (int, float)) if typ is float else isinstance(obj[key], typ)
        if not ok or (typ is int and isinstance(obj[key], bool)):
            raise ChainFormatError(f"{where}: field '{key}' must be {typ.__name__}")
    n = len(obj["reasoning_ids"])
    if n == 0:
        raise ChainFormatError(f"{where}: field 'reasoning_ids' is empty")
    for key in ("tokens", "order", "ranks", "trajectory"):
        if len(obj[key]) != n:
            raise ChainFormatError(f"{where}: field '{key}' has {len(obj[key])} entries, expected n={n}")
    if sorted(obj["order"]) != list(range(n)):
        raise ChainFormatError(f"{where}: field 'order' is not a permutation of 0..{n - 1}")
    if sorted(obj["ranks"]) != list(range(1, n + 1)):
        raise ChainFormatError(f"{where}: field 'ranks' is not a permutation of 1..{n}")
    for step, i in enumerate(obj["order"], 1):
        if obj["ranks"][i] != step:
            raise ChainFormatError(f"{where}: fields 'order' and 'ranks' disagree at token {i}")
    if obj["objective"] not in ("joint", "answer"):
        raise ChainFormatError(f"{where}: field 'objective' must be 'joint' or 'answer'")


def read_ranked(path: str | Path, objective: str | None = None) -> list[dict[str, Any]]:
    """Read and validate a ranked JSONL file (ids unique); optionally keep one objective only."""
    out, seen = [], {}
    for lineno, obj in iter_jsonl(path):
        where = f"{path}:{lineno}"
        validate_ranked(obj, where)
        key = (obj["id"], obj["objective"])
        if key in seen:
            raise ChainFormatError(f"{where}: field 'id': duplicate id {obj['id']!r} (first on line {seen[key]})")
        seen[key] = lineno
        if objective is None or obj["objective"] == objective:
            out.append(obj)
    return out


def approximate_label(rec: Mapping[str, Any]) -> str | None:
    """How a record's order departs from the exact greedy search, or None when it is exact.

    "stride 4" (`label --stride 4`), "budget 0.1" (`label --budget 0.1`, with "(lazy)" when it ran
    without a proposer) or "shortlist 4" (`label --shortlist 4`): such records may train a predictor but
    are no reference to score one against (their agreement with the exact order is about 0.5-0.85,
    docs/approximate_greedy.md)."""
    if int(rec.get("stride", 1) or 1) > 1:
        return f"stride {int(rec['stride'])}"
    if rec.get("shortlist"):
        return f"shortlist {int(rec['shortlist'])}"
    budget = rec.get("budget")
    if budget is not None and float(budget) < 1:
        return f"budget {float(budget):g}" + (" (lazy)" if rec.get("proposer") is None else "")
    return None


def record_chain(rec: Mapping[str, Any]) -> Chain:
    return Chain(rec["question"], rec["reasoning"], rec["answer"], str(rec["id"]))


def layout_mismatch(rec: Mapping[str, Any], tokenizer, max_length: int | None = None) -> str | None:
    """None if re-encoding the record's chain with `tokenizer` gives its stored ids, else the first
    field that differs, e.g. "answer_ids (stored ends ...[30, 1], now ...[30, 2])"."""
    from .layout import encode_chain

    lay = encode_chain(tokenizer, record_chain(rec), max_length)
    for key in ("prompt_ids", "reasoning_ids", "answer_ids"):
        stored, now = list(rec[key]), getattr(lay, key)
        if stored != now:
            return f"{key} (stored ends ...{stored[-2:]}, now ...{now[-2:]})"
    return None


def order_agreement(order_a: list[int], order_b: list[int]) -> tuple[int | None, float]:
    """Compare two deletion orders of the same n tokens: (1-based step at which they first part, or None
    if identical; Spearman correlation of the two rank vectors, 1.0 for n < 2)."""
    from scipy.stats import spearmanr

    part = next((k + 1 for k, (a, b) in enumerate(zip(order_a, order_b)) if a != b), None)
    if len(order_a) < 2:
        return part, 1.0
    return part, float(spearmanr(ranks_from_order(list(order_a)), ranks_from_order(list(order_b)))[0])
