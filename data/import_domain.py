r"""Convert other reasoning-chain data sets into chains files (labeling queues) of the GSM8K queue's kind.

Each domain's source rows become chains (id, question, reasoning, answer) in the package's format;
chains whose reasoning has --min-tokens..--max-tokens tokens under the LM's tokenizer (the count the
labeler's layout gives: `predictor.layout.encode_chain(...).n`) are kept and shuffled with --seed, so
labeling any prefix of the output is a uniform random sample. Ids are `<domain>-<split>-<row>`, with
<split> the source file's stem (dev, test, train) and <row> the 0-based row in that file (JSON Lines: the
line, blank lines counted, so ids do not move when a blank line is added; a JSON list: the item).
The summary line counts the rows kept and those skipped, by reason. A row that is not a JSON object, or
lacks a field or has one of the wrong type, stops the import with `file:line: field 'x': ...` (exit 2);
nothing is written then.

Domains (sources, licences and commands: data/README.md):

- `aqua`: AQuA-RAT (Ling et al. 2017, github.com/google-deepmind/AQuA, Apache-2.0); JSON lines with
  question, options ["A)125", ...], rationale, correct. Question = the question, a newline and
  "Answer Choices: (A) 125 (B) 150 ..."; reasoning = the rationale with a final answer declaration
  ("Answer: C", "ANSWER:D", "The answer is A.", a bare "C", "Answer C)59, 43") removed when it names
  the correct option; answer = the correct option's text ("125"); the letter is kept as `choice`.
- `strategyqa`: StrategyQA (Geva et al. 2021, github.com/eladsegal/strategyqa, MIT); a JSON list of
  objects with qid, question, answer (bool), facts [str]. Reasoning = the facts joined by single
  spaces (runs of whitespace collapsed, a full stop added to a fact that ends without one); answer = "yes" or "no"; `qid` kept.
- `math`: MATH (Hendrycks et al. 2021, github.com/hendrycks/math, MIT; the 1,000-problem test subset as
  JSON lines with problem, level, type, solution); LaTeX-heavy competition mathematics, a math domain
  unlike GSM8K's word problems. Question = the problem; answer = the content of the solution's single
  `\boxed{...}`; reasoning = the solution with that `\boxed{X}` (or `\fbox{X}`) written as plain X.
  Rows without exactly one boxed answer, or with an Asymptote drawing (`[asy]`) in the problem or
  solution, are skipped; `level` and `type` are kept.

    python data/import_domain.py aqua --in data/aqua/dev.json data/aqua/test.json \
        --out data/chains/aqua-20-64.jsonl --min-tokens 20 --max-tokens 64 --seed 0
    python data/import_domain.py math --in data/math/test.jsonl \
        --out data/chains/math-20-64.jsonl --min-tokens 20 --max-tokens 64 --seed 0
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_OPTION = re.compile(r"^\s*([A-E])\s*\)\s*(.*?)\s*$", re.S)
_KEYWORD = r"(?:correct\s+|right\s+)?(?:answer|ans|option|choice)"
_LEAD = r"(?:(?:so|thus|hence|therefore)[,\s]+)?(?:this\s+gives\s+us\s+)?(?:the\s+)?"
_SEP = r"\s*(?:is|will\s+be|=|:|-|–|=>|>>)?[\s,:]*(?:option|choice)?\s*[:=\-.]?\s*"
_IS_CORRECT = r"\s+is\s+(?:the\s+)?(?:correct|right)(?:\s+(?:answer|option|choice))?"


def _declaration_patterns(letter: str, text: str) -> tuple[re.Pattern, re.Pattern]:
    """(whole last line, tail of the last line) patterns declaring `letter` as the answer:
    "[so] [the] [correct] answer [is|:|=] [option] (C) [text]" and "[so] [option] C is [the] correct
    [answer]", ending in an optional full stop."""
    opt = rf"(?:\(\s*{letter}\s*\)|{letter}\)?)"
    after = rf"(?:\s*[.)]?\s*{re.escape(text)}\S*(?:\s+\w+)?)?" if text else ""
    decl = (rf"{_LEAD}(?:(?:{_KEYWORD})?{_SEP}{opt}{after}"
            rf"|(?:(?:option|choice|answer)\s*)?{opt}(?:{_IS_CORRECT}|\s+is\s+the\s+answer))")
    keyed = (rf"{_LEAD}(?:{_KEYWORD}{_SEP}{opt}{after}"
             rf"|(?:(?:option|choice|answer)\s*)?{opt}(?:{_IS_CORRECT}|\s+is\s+the\s+answer))")
    line = re.compile(rf"^(?:>>\s*)?(?:{decl})\s*[.!]?\s*$", re.I)
    tail = re.compile(rf"[\s.,;]*(?<![A-Za-z0-9(])(?:>>\s*)?(?:{keyed})\s*[.!]?\s*$", re.I)
    return line, tail


def strip_declaration(rationale: str, letter: str, text: str = "") -> str:
    """The rationale without a final statement of the correct option (`letter`, e.g. "C"), if any.

    A last line that only declares the answer ("Answer: C", "ANSWER:D", "The answer is A.", "C",
    "Answer C)59, 43") is dropped; a declaration at the end of the last line ("... = 125. The correct
    answer is D.") is cut off. A last line naming another letter, or none, is kept."""
    body = rationale.rstrip()
    head, sep, last = body.rpartition("\n")
    line, tail = _declaration_patterns(letter, text)
    if line.match(last.strip()):
        return head.rstrip() if sep else ""
    m = tail.search(last)
    if m and m.start() > 0:
        return (head + sep + last[: m.start()]).rstrip()
    return body


class SourceError(ValueError):
    """A source row that cannot be converted; the message starts with `file:line` and names the field."""


class SkipRow(Exception):
    """A row the domain's rules leave out; the message is the reason, counted in the summary."""


def field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    """obj[name], checked to be of `kind`, else SourceError naming `where` and the field."""
    if name not in obj:
        raise SourceError(f"{where}: field {name!r}: missing (fields: {', '.join(map(str, obj)) or 'none'})")
    value = obj[name]
    if not isinstance(value, kind):
        want = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise SourceError(f"{where}: field {name!r}: expected {want}, got {type(value).__name__} {value!r:.60}")
    return value


def aqua_chain(obj: dict[str, Any], cid: str, where: str = "") -> dict[str, Any]:
    """One AQuA-RAT row as a chain dict (see the module doc)."""
    where = where or cid
    raw = field(obj, "options", list, where)
    options = [_OPTION.match(o) if isinstance(o, str) else None for o in raw]
    if not all(options):
        raise SourceError(f"{where}: field 'options': not all of the form 'A)text': {raw}")
    texts = {m.group(1): m.group(2) for m in options}
    letter = field(obj, "correct", str, where).strip()
    if letter not in texts:
        raise SourceError(f"{where}: field 'correct': option {letter!r} not among {sorted(texts)}")
    choices = " ".join(f"({k}) {v}" for k, v in texts.items())
    return {"id": cid, "question": field(obj, "question", str, where).strip() + "\nAnswer Choices: " + choices,
            "reasoning": strip_declaration(field(obj, "rationale", str, where), letter, texts[letter]),
            "answer": texts[letter], "choice": letter}


def strategyqa_chain(obj: dict[str, Any], cid: str, where: str = "") -> dict[str, Any]:
    """One StrategyQA row as a chain dict (see the module doc)."""
    where = where or cid
    facts = field(obj, "facts", list, where)
    if not all(isinstance(f, str) for f in facts):
        raise SourceError(f"{where}: field 'facts': expected a list of strings, got {facts!r:.60}")
    facts = [" ".join(f.split()) for f in facts]
    facts = " ".join(f if f[-1:] in ".!?" else f + "." for f in facts if f)
    answer = field(obj, "answer", bool, where)
    return {"id": cid, "question": field(obj, "question", str, where).strip(), "reasoning": facts,
            "answer": "yes" if answer else "no", "qid": field(obj, "qid", str, where)}


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def unbox(solution: str) -> tuple[str, str] | None:
    """(solution with its one `\\boxed{X}` replaced by X, X), or None without exactly one boxed answer.

    Braces inside X are matched, so `\\boxed{\\frac{1}{2}}` gives `\\frac{1}{2}`."""
    hits = list(_BOXED.finditer(solution))
    if len(hits) != 1:
        return None
    start = hits[0].end()
    depth = 1
    for k in range(start, len(solution)):
        depth += {"{": 1, "}": -1}.get(solution[k], 0)
        if depth == 0:
            answer = solution[start:k].strip()
            if not answer:
                return None
            return solution[:hits[0].start()] + answer + solution[k + 1:], answer
    return None


def math_chain(obj: dict[str, Any], cid: str, where: str = "") -> dict[str, Any]:
    """One MATH row as a chain dict; SkipRow for a row the module doc says is skipped."""
    where = where or cid
    problem, solution = field(obj, "problem", str, where), field(obj, "solution", str, where)
    level, kind = field(obj, "level", str, where), field(obj, "type", str, where)
    if "[asy]" in problem or "[asy]" in solution:
        raise SkipRow("with an Asymptote drawing ([asy])")
    unboxed = unbox(solution)
    if unboxed is None:
        raise SkipRow("without exactly one boxed answer")
    reasoning, answer = unboxed
    return {"id": cid, "question": problem.strip(), "reasoning": reasoning.strip(), "answer": answer,
            "level": level, "type": kind}


def _json_lines(path: Path) -> list[tuple[str, int, Any]]:
    """(where, row, object) of each non-blank line; row = 0-based line number (blank lines counted)."""
    from predictor.chains import iter_jsonl

    return [(f"{path}:{lineno}", lineno - 1, obj) for lineno, obj in iter_jsonl(path)]


def _json_list(path: Path) -> list[tuple[str, int, Any]]:
    """(where, row, object) of each item of a JSON list."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        items = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SourceError(f"{path}: not a JSON file: {e}") from None
    if not isinstance(items, list):
        raise SourceError(f"{path}: expected a JSON list of rows, got {type(items).__name__}")
    return [(f"{path}: item {i}", i, obj) for i, obj in enumerate(items)]


DOMAINS = {
    "aqua": (_json_lines, aqua_chain),
    "strategyqa": (_json_list, strategyqa_chain),
    "math": (_json_lines, math_chain),
}


def convert(domain: str, paths: list[Path]) -> tuple[list[dict[str, Any]], int, Counter]:
    """(chain dicts of every usable row of every source file, rows read, {skip reason: rows}).

    Ids are `<domain>-<file stem>-<row>`. Raises SourceError (file:line, field) for a malformed row and
    FileNotFoundError for a missing file."""
    read, to_chain = DOMAINS[domain]
    out, rows, skipped = [], 0, Counter()
    for path in paths:
        split = path.name.split(".")[0]
        for where, row, obj in read(path):
            rows += 1
            if not isinstance(obj, dict):
                raise SourceError(f"{where}: expected a JSON object (one row), got {type(obj).__name__}")
            try:
                out.append(to_chain(obj, f"{domain}-{split}-{row}", where))
            except SkipRow as reason:
                skipped[str(reason)] += 1
    ids = [c["id"] for c in out]
    if len(set(ids)) != len(ids):
        raise SourceError("duplicate ids: two source files share a stem")
    return out, rows, skipped


def reasoning_lengths(chains: list[dict[str, Any]], model: str | None) -> list[int]:
    """Reasoning tokens of each chain in the labeler's layout (empty reasoning: 0)."""
    from transformers import AutoTokenizer

    from predictor.chains import Chain
    from predictor.layout import ChainError, encode_chain
    from predictor.lm import _resolve

    tok = AutoTokenizer.from_pretrained(_resolve(model)[1])
    out = []
    for c in chains:
        try:
            out.append(encode_chain(tok, Chain.from_mapping(c, c["id"])).n)
        except ChainError:
            out.append(0)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("domain", choices=sorted(DOMAINS))
    p.add_argument("--in", dest="inp", nargs="+", required=True, type=Path, help="source files")
    p.add_argument("--out", required=True, help="chains JSONL to write (atomically)")
    p.add_argument("--min-tokens", type=int, default=None, help="minimum reasoning tokens")
    p.add_argument("--max-tokens", type=int, default=None, help="maximum reasoning tokens")
    p.add_argument("--seed", type=int, default=None, help="shuffle with this seed (default: keep order)")
    p.add_argument("--model", default=None, help="tokenizer's LM for the length filter (default: embedded)")
    args = p.parse_args(argv)
    lo, hi = args.min_tokens or 1, args.max_tokens or 1 << 30
    if lo > hi:
        p.error(f"--min-tokens {lo} is above --max-tokens {hi}: no chain could be kept")

    from predictor.jsonl_io import atomic_write_jsonl

    try:
        chains, rows, skipped = convert(args.domain, args.inp)
    except (SourceError, FileNotFoundError, ValueError) as e:  # the message names file:line and field
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    total = len(chains)
    empty = sum(not c["reasoning"] for c in chains)
    chains = [c for c in chains if c["reasoning"]]
    outside = 0
    if args.min_tokens is not None or args.max_tokens is not None:
        kept = [c for c, n in zip(chains, reasoning_lengths(chains, args.model)) if lo <= n <= hi]
        outside, chains = len(chains) - len(kept), kept
    if args.seed is not None:
        random.Random(args.seed).shuffle(chains)
    atomic_write_jsonl(args.out, chains)
    reasons = [f"{k} {reason}" for reason, k in skipped.most_common()]
    reasons += [f"{empty} with empty reasoning"] * bool(empty)
    reasons += [f"{outside} outside {lo}-{args.max_tokens or 'any'} reasoning tokens"] * bool(outside)
    print(f"wrote {len(chains)} of {total} chains to {args.out} ({rows} rows read"
          + (f"; left out: {', '.join(reasons)}" if reasons else "") + ")")
    if not chains:
        print(f"{p.prog}: warning: no chain was kept", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
