"""Convert other reasoning-chain data sets into chains files (labeling queues) of the GSM8K queue's kind.

Each domain's source rows become chains (id, question, reasoning, answer) in the package's format;
chains whose reasoning has --min-tokens..--max-tokens tokens under the LM's tokenizer (the count the
labeler's layout gives: `predictor.layout.encode_chain(...).n`) are kept and shuffled with --seed, so
labeling any prefix of the output is a uniform random sample. Ids are `<domain>-<split>-<row>`, with
<split> the source file's stem (dev, test, train) and <row> the 0-based row in that file.

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

    python data/import_domain.py aqua --in data/aqua/dev.json data/aqua/test.json \\
        --out data/chains/aqua-20-64.jsonl --min-tokens 20 --max-tokens 64 --seed 0
    python data/import_domain.py math --in data/math/test.jsonl \\
        --out data/chains/math-20-64.jsonl --min-tokens 20 --max-tokens 64 --seed 0
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
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


def aqua_chain(obj: dict[str, Any], cid: str) -> dict[str, Any]:
    """One AQuA-RAT row as a chain dict (see the module doc)."""
    options = [_OPTION.match(o) for o in obj["options"]]
    if not all(options):
        raise ValueError(f"{cid}: option not of the form 'A)text': {obj['options']}")
    texts = {m.group(1): m.group(2) for m in options}
    letter = obj["correct"].strip()
    if letter not in texts:
        raise ValueError(f"{cid}: correct option {letter!r} not among {sorted(texts)}")
    choices = " ".join(f"({k}) {v}" for k, v in texts.items())
    return {"id": cid, "question": obj["question"].strip() + "\nAnswer Choices: " + choices,
            "reasoning": strip_declaration(obj["rationale"], letter, texts[letter]),
            "answer": texts[letter], "choice": letter}


def strategyqa_chain(obj: dict[str, Any], cid: str) -> dict[str, Any]:
    """One StrategyQA row as a chain dict (see the module doc)."""
    facts = [" ".join(f.split()) for f in obj["facts"]]
    facts = " ".join(f if f[-1:] in ".!?" else f + "." for f in facts if f)
    if not isinstance(obj["answer"], bool):
        raise ValueError(f"{cid}: answer is not a boolean: {obj['answer']!r}")
    return {"id": cid, "question": obj["question"].strip(), "reasoning": facts,
            "answer": "yes" if obj["answer"] else "no", "qid": obj["qid"]}


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


def math_chain(obj: dict[str, Any], cid: str) -> dict[str, Any] | None:
    """One MATH row as a chain dict, or None for a row the module doc says is skipped."""
    if "[asy]" in obj["problem"] or "[asy]" in obj["solution"]:
        return None
    unboxed = unbox(obj["solution"])
    if unboxed is None:
        return None
    reasoning, answer = unboxed
    return {"id": cid, "question": obj["problem"].strip(), "reasoning": reasoning.strip(), "answer": answer,
            "level": obj["level"], "type": obj["type"]}


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


DOMAINS = {
    "aqua": (_json_lines, aqua_chain),
    "strategyqa": (lambda p: json.loads(p.read_text(encoding="utf-8")), strategyqa_chain),
    "math": (_json_lines, math_chain),
}


def convert(domain: str, paths: list[Path]) -> list[dict[str, Any]]:
    """Chain dicts of every usable row of every source file, ids `<domain>-<file stem>-<row>` (a converter
    returns None for a row its domain skips; rows keep their source numbering)."""
    read, to_chain = DOMAINS[domain]
    out = []
    for path in paths:
        split = path.name.split(".")[0]
        chains = (to_chain(obj, f"{domain}-{split}-{i}") for i, obj in enumerate(read(path)))
        out += [c for c in chains if c is not None]
    ids = [c["id"] for c in out]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate ids: two source files share a stem")
    return out


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

    from predictor.jsonl_io import atomic_write_jsonl

    chains = convert(args.domain, args.inp)
    total = len(chains)
    chains = [c for c in chains if c["reasoning"]]
    if args.min_tokens is not None or args.max_tokens is not None:
        lo, hi = args.min_tokens or 1, args.max_tokens or 1 << 30
        chains = [c for c, n in zip(chains, reasoning_lengths(chains, args.model)) if lo <= n <= hi]
    if args.seed is not None:
        random.Random(args.seed).shuffle(chains)
    atomic_write_jsonl(args.out, chains)
    print(f"wrote {len(chains)} of {total} chains to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
