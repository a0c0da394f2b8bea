"""Pruning units and protected spans: what `prune` keeps or removes together so pruned text stays valid.

A *unit* is a run of reasoning tokens kept or removed as one:
- tokens that do not decode to whole characters (byte-level BPE pieces of one CJK character or
  emoji) join their neighbours until the run decodes to whole characters, so pruned text never
  holds U+FFFD; runs then join into whole grapheme clusters (a letter with its combining marks, an
  emoji ZWJ sequence, flag, keycap or skin-tone sequence, "\r\n"), so no mark is left orphaned;
- a `<think>` or `</think>` tag is one unit, and is protected (kept) by default, so R1-style
  chains keep balanced tags;
- every span a protect preset matches ("numbers", "math") is one protected unit.

Protect presets:
- "digits": every token that holds a digit (token by token: separators, decimal points and signs
  between digit tokens are not kept; use "numbers" to keep whole numbers);
- "numbers": whole numbers with their sign, currency sign (`CURRENCY`), thousands separators (a comma and
  exactly 3 digits: "1,2,3" is three numbers), decimal point and percent sign (`NUMBER`: "-4", "$1,234.50", "3.5", "50%");
- "math": "numbers" plus operators (`OPERATOR`) and whole LaTeX math: commands with their brace
  groups ("\\frac{1}{2}") and paired delimiters ("$...$" holding math markup, "$$...$$", "\\(...\\)",
  "\\[...\\]").
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Union

import numpy as np
import regex

from .token_text import char_groups, group_texts

THINK_TAG = re.compile(r"</?think>")
GRAPHEME = regex.compile(r"\X")  # an extended grapheme cluster: a letter with its combining marks, an emoji sequence
CURRENCY = "$€£¥￥₹₩₽"  # currency signs a number may start with (￥: the full-width yen of CJK text)
PERCENT = "%％"  # percent signs a number may end with (％: full-width)
# a comma joins digits only as a thousands separator (exactly 3 digits follow): "1,234" is one number,
# "1,2,3" a list of three
NUMBER = re.compile(rf"(?:(?<![\w)\]])[-+−])?[{CURRENCY}]?\d+(?:,\d{{3}}(?!\d))*(?:\.\d+)?[{PERCENT}]?")


def _braces(depth: int) -> str:
    """Regex for a brace group `{...}` whose braces nest up to `depth` levels deep."""
    inner = r"[^{}]" if depth <= 1 else r"[^{}]|" + _braces(depth - 1)
    return r"\{(?:" + inner + r")*\}"


LATEX_BRACE_DEPTH = 8  # brace groups nested deeper than this are not kept whole
LATEX = re.compile(
    r"\$\$.+?\$\$|\\\(.+?\\\)|(?<!\\)\\\[.+?\\\]"  # display and paired delimiters (not the line break \\[2pt])
    r"|\$[^$\n]*[\\^_{}][^$\n]*\$"  # inline $...$ holding math markup (not two prices)
    r"|\\[A-Za-z]+(?:\[[^\]\[{}\n]*\]|" + _braces(LATEX_BRACE_DEPTH) + r")*",  # a command with its [option] and {brace} groups
    re.S)
OPERATOR = re.compile(r"[+\-*/=×÷^<>≤≥≠±√∑∏∫−]")
# a "-" or "+" right after a letter, digit or closing bracket and before a number is subtraction or a
# hyphen ("a-5", "3e-5", "2024-03-15"), no sign (`NUMBER`): with span presets it stays with the character
# before it, so that removing that character never turns it into a sign ("= -5")
UNSIGNED_MINUS = re.compile(rf"(?<=[\w)\]])[-+−](?=[{CURRENCY}]?\d)")

SPAN_PRESETS: dict[str, tuple[re.Pattern, ...]] = {"numbers": (NUMBER,), "math": (LATEX, NUMBER, OPERATOR)}
TOKEN_PRESETS: dict[str, Callable[[str], bool]] = {"digits": lambda tok: any(ch.isdigit() for ch in tok)}
PRESETS = ("digits", "numbers", "math")

Protect = Union[None, str, Callable[[str], bool], Iterable[int]]


@dataclass(frozen=True)
class Units:
    """groups: token indices of each unit, in order, covering 0..n-1; texts: each unit's text in
    context (their concatenation is the decoded reasoning); protected: bool [units]."""

    groups: list[list[int]]
    texts: list[str]
    protected: np.ndarray

    @property
    def n_tokens(self) -> int:
        return self.groups[-1][-1] + 1 if self.groups else 0

    def unit_of(self) -> np.ndarray:
        """int [n]: the unit index of every token."""
        out = np.empty(self.n_tokens, dtype=np.int64)
        for u, g in enumerate(self.groups):
            out[g] = u
        return out

    def protected_tokens(self) -> np.ndarray:
        """bool [n]: tokens in protected units."""
        return self.protected[self.unit_of()]


def check_protect(protect: Protect) -> None:
    """ValueError for an unknown preset name or a value that is no preset, predicate or index set."""
    if isinstance(protect, str) and protect not in PRESETS:
        raise ValueError(f"unknown protect preset {protect!r}; choose from {', '.join(PRESETS)}")
    if protect is not None and not isinstance(protect, (str, Iterable)) and not callable(protect):
        raise ValueError(f"protect must be a preset name ({', '.join(PRESETS)}), a predicate on the decoded "
                         f"token or token indices, got {protect!r}")


def _joins(texts: list[str], spans: list[tuple[int, int]]) -> np.ndarray:
    """bool [len(texts) - 1]: the boundary after text u lies strictly inside a span.

    O(characters + spans): a difference array counts, at each character offset c, the spans with
    a < c < b."""
    lens = np.array([len(t) for t in texts], dtype=np.int64)
    ends = np.cumsum(lens)[:-1]
    depth = np.zeros(int(lens.sum()) + 1, dtype=np.int64)
    for a, b in spans:
        if b - a > 1:
            depth[a + 1] += 1
            depth[b] -= 1
    return np.cumsum(depth)[ends] > 0


def _spans(patterns: Iterable[re.Pattern], text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for p in patterns for m in p.finditer(text) if m.end() > m.start()]


def _overlaps(texts: list[str], spans: list[tuple[int, int]]) -> np.ndarray:
    """bool [len(texts)]: text u overlaps one of the spans."""
    ends = np.cumsum([len(t) for t in texts])
    starts = ends - np.array([len(t) for t in texts])
    hit = np.zeros(len(texts), dtype=bool)
    for a, b in spans:
        hit |= (starts < b) & (ends > a)
    return hit


def token_protected(protect: Protect, tokens: list[str]) -> np.ndarray:
    """bool [n]: tokens protected by a token preset ("digits"), a predicate on the decoded token, or
    token indices (ValueError for an index outside [0, n)); span presets protect no token here."""
    n = len(tokens)
    if protect is None or isinstance(protect, str) and protect in SPAN_PRESETS:
        return np.zeros(n, dtype=bool)
    check_protect(protect)
    if isinstance(protect, str):
        protect = TOKEN_PRESETS[protect]
    if callable(protect):
        return np.array([bool(protect(t)) for t in tokens], dtype=bool)
    mask = np.zeros(n, dtype=bool)
    for i in protect:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < n:
            raise ValueError(f"protect index {i!r} is not a token index in [0, {n})")
        mask[int(i)] = True
    return mask


def pruning_units(tokenizer, ids: list[int], protect: Protect = None, keep_think_tags: bool = True) -> Units:
    """The units of reasoning ids `ids` (see the module docstring) with their protection.

    A unit is protected when one of its tokens is (`token_protected`), it overlaps a span of a span
    preset, or (keep_think_tags) it is a think tag."""
    tokens = [tokenizer.decode([t], clean_up_tokenization_spaces=False) for t in ids]
    tok_prot = token_protected(protect, tokens)
    groups = char_groups(tokenizer, ids)
    texts = group_texts(tokenizer, ids, groups)
    text = "".join(texts)
    tags = _spans([THINK_TAG], text)
    clusters = [(m.start(), m.end()) for m in GRAPHEME.finditer(text) if m.end() - m.start() > 1]
    span_preset = isinstance(protect, str) and protect in SPAN_PRESETS
    preset_spans = _spans(SPAN_PRESETS[protect], text) if span_preset else []
    minus_joins = [(m.start() - 1, m.end()) for m in UNSIGNED_MINUS.finditer(text)] if span_preset else []
    if len(groups) > 1:
        join = _joins(texts, tags + preset_spans + clusters + minus_joins)
        merged_g, merged_t = [groups[0]], [texts[0]]
        for u in range(1, len(groups)):
            if join[u - 1]:
                merged_g[-1] = merged_g[-1] + groups[u]
                merged_t[-1] += texts[u]
            else:
                merged_g.append(groups[u])
                merged_t.append(texts[u])
        groups, texts = merged_g, merged_t
    protected = np.array([bool(tok_prot[g].any()) for g in groups], dtype=bool)
    protected |= _overlaps(texts, preset_spans + (tags if keep_think_tags else []))
    return Units(groups, texts, protected)


_NUMBER_END = re.compile(rf"[\d{CURRENCY}{PERCENT}+\-−.,]$")  # a character that a following number's digits could join
_NUMBER_START = re.compile(rf"(?:[-+−]?[{CURRENCY}]?|[.,])\d")  # a number's start: sign, currency sign, decimal point
_SIGNED_START = re.compile(rf"[-+−][{CURRENCY}]?\d")
_SIGN_EATER = re.compile(r"[\w)\]]$")  # after these a "-" is read as subtraction, not as a sign (`NUMBER`)


def _digit_junction(left: str, right: str) -> bool:
    """True when writing `right` right after `left` would change a number: glue two into one ("3" + "4",
    "3" + "-$5"), give one a sign, currency sign, decimal point or percent sign it did not have
    ("-" + "4", "3" + "%"), or take its sign away ("x" + "-4" reads as a subtraction)."""
    if _NUMBER_END.search(left) and _NUMBER_START.match(right):
        return True
    if left[-1:].isdigit() and bool(right) and right[0] in PERCENT:
        return True
    return bool(_SIGN_EATER.search(left) and _SIGNED_START.match(right))


def _word_junction(left: str, right: str, gap: list[str]) -> bool:
    """True when a removed gap that held whitespace would glue two words ("work" + "100%")."""
    return (bool(left) and bool(right) and left[-1].isalnum() and right[0].isalnum()
            and any(ch.isspace() for t in gap for ch in t))


def join_units(texts: list[str], kept_units: list[int], first_text: str | None = None) -> str:
    """Pruned text: the kept units' texts in order; where a removed gap would glue a number to the
    next ("3" + "4" -> "34") or to a sign ("-" + "4"), or held whitespace between two words that it
    would now glue ("Jaydee" + "4560"), a space is written between them.
    first_text replaces the first kept unit's text (its standalone decode, as the tokenizer writes the
    start of a text)."""
    out: list[str] = []
    prev = None
    for u in kept_units:
        t = first_text if (prev is None and first_text is not None) else texts[u]
        if prev is not None and u != prev + 1 and out and (
                _digit_junction(out[-1], t) or _word_junction(out[-1], t, texts[prev + 1:u])):
            out.append(" ")
        out.append(t)
        prev = u
    return "".join(out)
