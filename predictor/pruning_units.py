"""Pruning units and protected spans: what `prune` keeps or removes together so pruned text stays valid.

A *unit* is a run of reasoning tokens kept or removed as one:
- tokens that do not decode to whole characters (byte-level BPE pieces of one CJK character or
  emoji) join their neighbours until the run decodes to whole characters, so pruned text never
  holds U+FFFD; runs then join into whole grapheme clusters (a letter with its combining marks, an
  emoji ZWJ sequence, flag, keycap or skin-tone sequence, "\r\n"), so no mark is left orphaned;
- a `<think>` or `</think>` tag is one unit, and is protected (kept) by default, so R1-style
  chains keep balanced tags;
- a fenced code block (```` ``` ```` or `~~~` to the matching fence, or to the end of the text when
  no fence closes it) and an inline code span (`` `x` ``, ``` ``x`` ```) is one unit, kept or removed
  whole whatever is protected, so fences stay balanced and a kept block keeps its line structure
  (newlines and indentation); the "code" preset protects them;
- every span a protect preset matches ("numbers", "math") is one protected unit.

Protect presets (a name, several joined by "+" such as "code+numbers", or a list of names):
- "digits": every token that holds a digit (token by token: separators, decimal points and signs
  between digit tokens are not kept; use "numbers" to keep whole numbers);
- "numbers": whole compound values (`VALUE`): a number with its sign, currency sign (`CURRENCY`),
  thousands separators (a comma and exactly 3 digits: "1,2,3" is three numbers), decimal point and
  percent sign ("-4", "$1,234.50", "3.5", "50%"), fractions, ratios, times and dates ("1/2", "2:30",
  "3:45 pm", "2024/03/15"), mixed numbers ("3 1/2", "1 ½"), powers and scientific notation ("10^3",
  "10²", "1.5e-3", "3 × 10^8"), unicode fractions ("½"), and the unit written with the value: glued
  ("40km", "5kg", "10am"), a unit symbol after a space ("5 km/h", "10² m²", "25 °C": `text_patterns.UNIT_SYMBOLS`)
  or a CJK unit word ("40公里", "5支", "3个": `text_patterns.CJK_UNITS`);
- "math": "numbers" plus operators (`OPERATOR`; a "/" between letters keeps its words: "km/h" is
  one unit) and whole LaTeX math: commands with their brace groups ("\\frac{1}{2}") and paired
  delimiters ("$...$" holding math markup, "$$...$$", "\\(...\\)", "\\[...\\]");
- "code": every fenced code block and inline code span, verbatim.
Values inside code blocks do not protect the block (use "code" for that).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Union

import numpy as np

from .text_patterns import (
    THINK_TAG,
    GRAPHEME,
    CURRENCY,
    PERCENT,
    NUMBER,  # noqa: F401  (re-exported: the number pattern of the presets)
    VALUE,
    WORD_SLASH,
    FENCED_CODE,
    INLINE_CODE,
    LATEX,
    OPERATOR,
    UNSIGNED_MINUS,
)
from .token_text import char_groups, group_texts

SPAN_PRESETS: dict[str, tuple[re.Pattern, ...]] = {"numbers": (VALUE,), "math": (LATEX, VALUE, OPERATOR),
                                                   "code": (FENCED_CODE, INLINE_CODE)}
TOKEN_PRESETS: dict[str, Callable[[str], bool]] = {"digits": lambda tok: any(ch.isdigit() for ch in tok)}
PRESETS = ("digits", "numbers", "math", "code")

Protect = Union[None, str, Callable[[str], bool], Iterable[int], Iterable[str]]


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


def preset_names(protect: Protect) -> tuple[str, ...] | None:
    """The preset names `protect` gives: ("numbers",) for "numbers", ("code", "math") for "code+math",
    "code,math" or ["code", "math"]; None when protect is no preset (None, a predicate, token indices).
    Unknown names are returned as given (`check_protect` refuses them)."""
    if isinstance(protect, str):
        return tuple(p.strip() for p in re.split(r"[+,]", protect))
    if isinstance(protect, (list, tuple)) and protect and all(isinstance(p, str) for p in protect):
        return tuple(protect)
    return None


def check_protect(protect: Protect) -> None:
    """ValueError for an unknown preset name or a value that is no preset, predicate or index set."""
    names = preset_names(protect)
    if names is not None:
        for name in names:
            if name not in PRESETS:
                raise ValueError(f"unknown protect preset {name!r}; choose from {', '.join(PRESETS)} "
                                 "(several joined by '+', e.g. 'code+numbers')")
        return
    if protect is not None and not isinstance(protect, Iterable) and not callable(protect):
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


def code_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every fenced code block and of every inline code span outside them."""
    fenced = _spans([FENCED_CODE], text)
    blank = list(text)
    for a, b in fenced:
        blank[a:b] = "\0" * (b - a)
    return sorted(fenced + _spans([INLINE_CODE], "".join(blank)))


def _inside(spans: list[tuple[int, int]], outer: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans that lie within none of the outer spans."""
    return [(a, b) for a, b in spans if not any(oa <= a and b <= ob for oa, ob in outer)]


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
    names = preset_names(protect)
    if names is not None:
        check_protect(protect)
        mask = np.zeros(n, dtype=bool)
        for name in names:
            if name in TOKEN_PRESETS:
                mask |= np.array([bool(TOKEN_PRESETS[name](t)) for t in tokens], dtype=bool)
        return mask
    if protect is None:
        return np.zeros(n, dtype=bool)
    check_protect(protect)
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
    preset (values inside code blocks do not count: only "code" protects code), or (keep_think_tags)
    it is a think tag."""
    tokens = [tokenizer.decode([t], clean_up_tokenization_spaces=False) for t in ids]
    tok_prot = token_protected(protect, tokens)
    groups = char_groups(tokenizer, ids)
    texts = group_texts(tokenizer, ids, groups)
    text = "".join(texts)
    tags = _spans([THINK_TAG], text)
    code = code_spans(text)
    clusters = [(m.start(), m.end()) for m in GRAPHEME.finditer(text) if m.end() - m.start() > 1]
    names = [p for p in (preset_names(protect) or ()) if p in SPAN_PRESETS]
    preset_spans, value_joins = [], []
    for name in names:
        preset_spans += code if name == "code" else _inside(_spans(SPAN_PRESETS[name], text), code)
    if any(name != "code" for name in names):
        value_joins = ([(m.start() - 1, m.end()) for m in UNSIGNED_MINUS.finditer(text)]
                       + _spans([WORD_SLASH], text))
    if len(groups) > 1:
        join = _joins(texts, tags + code + preset_spans + clusters + value_joins)
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
_FENCE_END = re.compile(r"(?:`{3,}|~{3,})[ \t]*$")
_FENCE_START = re.compile(r"[ \t]*(?:`{3,}|~{3,})")
# Where a removed gap would make two kept values read as one ("3" ... "7/8" -> "3 7/8", a mixed number),
# the pruned text marks the cut with an ellipsis: no value holds it (`VALUE`), and a reader sees that text
# was left out between the two, so "3 … 7/8" cannot read as 3 7/8. Only this case gets it; a space is
# enough everywhere else ("3" ... "4" -> "3 4").
VALUE_SEPARATOR = " … "
_CONTEXT = 48  # characters either side of a junction that a value crossing it is looked for in


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
    """True when a removed gap that held whitespace would glue two words ("work" + "100%"; a code
    span counts as a word: "`x`" + "then")."""
    return (bool(left) and bool(right) and (left[-1].isalnum() or left[-1] == "`")
            and (right[0].isalnum() or right[0] == "`") and any(ch.isspace() for t in gap for ch in t))


def value_crosses(left: str, sep: str, right: str) -> bool:
    """True when, in `left + sep + right` (sep: whitespace or ""), a compound value (`VALUE`) takes
    characters from both sides: the two would read as one value ("3" + " " + "1/2", "5" + " km").
    Whitespace at the junction is read as one space (a newline as a newline), as a reader reads it."""
    left, right = left[-_CONTEXT:], right[:_CONTEXT]
    a = len(left.rstrip())
    ws = left[a:] + sep + right[:len(right) - len(right.lstrip())]
    gap = "\n" if "\n" in ws else (" " if ws else "")
    s = left[:a] + gap + right.lstrip()
    return any(m.start() < a and m.end() > a + len(gap) for m in VALUE.finditer(s))


def _reaches_back(left: str, right: str, run: int | None) -> bool:
    """True when a value that crosses `left + " " + right` starts before the last `run` characters of
    `left`: it would take in text that an earlier junction put next to this run."""
    if run is None:
        return False
    left, right = left[-_CONTEXT:], right[:_CONTEXT]
    a = len(left.rstrip())
    s = left[:a] + " " + right.lstrip()
    start = len(left) - run
    return any(m.start() < min(a, start) and m.end() > a + 1 for m in VALUE.finditer(s))


def junction(left: str, right: str, gap: list[str], run: int | None = None) -> str:
    """What join_units writes between kept text `left` and the kept text `right` that follows it
    across the removed units' texts `gap`: "" (the text as kept), " " where a number would change or
    two words would glue, "\\n" where a code fence would leave its line, `VALUE_SEPARATOR` where even
    a space would make two values read as one. run: how many characters at the end of `left` were
    contiguous with the gap in the reasoning (None: all of them); a value that a space would make
    reach further left than that (over an earlier junction: "4" ... " ×" ... "10^8") is a new one."""
    if (_FENCE_END.search(left) and not right.startswith(("\n", "\r"))) or \
            (_FENCE_START.match(right) and left and not left.endswith("\n")):
        return "\n"
    crosses = value_crosses(left, "", right)
    if not (crosses or _digit_junction(left, right) or _word_junction(left, right, gap)):
        return ""
    if all(not t.strip() for t in gap) and not _reaches_back(left, right, run):
        # only whitespace was removed: a space reads as the original did
        return "" if left[-1:].isspace() or right[:1].isspace() else " "
    if not value_crosses(left, " ", right):
        return "" if left[-1:].isspace() or right[:1].isspace() else " "
    return VALUE_SEPARATOR[left[-1:].isspace():len(VALUE_SEPARATOR) - right[:1].isspace()]


def join_units(texts: list[str], kept_units: list[int], first_text: str | None = None) -> str:
    """Pruned text: the kept units' texts in order, with `junction`'s separator where a unit follows a
    removed gap: a space where the gap would glue a number to the next ("3" + "4" -> "34") or to a sign
    ("-" + "4"), or held whitespace between two words that it would now glue ("Jaydee" + "4560"); a
    newline where a code fence would no longer start or end its line; `VALUE_SEPARATOR` where even a
    space would make two values read as one ("3" + "7/8" -> "3 … 7/8", not the mixed number 3 7/8).
    first_text replaces the first kept unit's text (its standalone decode, as the tokenizer writes the
    start of a text)."""
    out: list[str] = []
    tail = ""  # the last characters written, for the junction checks
    run = 0  # characters at the end of tail that are contiguous in the reasoning
    prev = None
    for j, u in enumerate(kept_units):
        t = first_text if (prev is None and first_text is not None) else texts[u]
        if prev is not None and u != prev + 1 and out:
            right = t  # this unit and the kept units right after it, up to the next gap
            nxt = j + 1
            while len(right) < _CONTEXT and nxt < len(kept_units) and kept_units[nxt] == kept_units[nxt - 1] + 1:
                right += texts[kept_units[nxt]]
                nxt += 1
            sep = junction(tail, right, texts[prev + 1:u], run if run < len(tail) else None)
            if sep:
                out.append(sep)
                tail = (tail + sep)[-_CONTEXT:]
            run = 0
        out.append(t)
        tail = (tail + t)[-_CONTEXT:]
        run += len(t)
        prev = u
    return "".join(out)


PROTECTED_FILL_WARN = 0.9  # protected tokens filling this share of the budget leave the ranks little to choose


def protected_fill(n_protected: int, budget: int | None) -> float:
    """The share of the budget that protected tokens take: n_protected / budget (inf for a budget of
    0 with protected tokens, 0 without a budget)."""
    if not budget:
        return float("inf") if n_protected and budget == 0 else 0.0
    return n_protected / budget


def crowded_by_protection(n_protected: int, budget: int | None, limit: float = PROTECTED_FILL_WARN) -> bool:
    """True when protected tokens fill at least `limit` (0.9) of the budget: the ranks then choose
    (almost) nothing and the pruned text is (almost) only what was protected, so a caller should warn."""
    return protected_fill(n_protected, budget) >= limit


def protection_warning(crowded: list[str], total: int, protect: Protect = None,
                       limit: float = PROTECTED_FILL_WARN) -> str | None:
    """The warning a caller prints when chains are `crowded_by_protection`: how many, a few ids, and
    what to do; None when there are none."""
    if not crowded:
        return None
    shown = ", ".join(crowded[:5]) + (", ..." if len(crowded) > 5 else "")
    what = f" ({protect!r})" if isinstance(protect, str) else ""
    return (f"{len(crowded)} of {total} chain(s) spend >= {limit:.0%} of the budget on protected tokens{what}, so the "
            f"ranks choose (almost) no other token: {shown}; raise the budget or protect less")
