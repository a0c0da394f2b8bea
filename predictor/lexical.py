"""Rule-based lexical flags and functional categories of reasoning tokens.

The six categories follow the greedy-pruning paper (Singh & Hakkani-Tur 2026): symbolic math,
verbal math, entity name, coreference, meta-discourse, grammatical. Tokens are decoded strings;
subword pieces are classified by the whole word they belong to, found by re-joining the tokens
into text and splitting that text into words with one regex.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

CATEGORIES = ("symbolic_math", "verbal_math", "entity_name", "coreference", "meta_discourse", "grammatical")
FLAG_NAMES = ("is_digit", "is_operator", "is_punct", "is_space", "starts_word", "has_newline", "is_upper")

OPERATOR_CHARS = set("+-*/=×÷^<>%$·")
# numbers (with thousands separators/decimals/percent/currency), operators, words, other symbols
_SPAN = re.compile(
    r"(?P<num>\$?\d[\d,]*(?:\.\d+)?%?)|(?P<op>[+\-*/=×÷^<>%$·])|(?P<word>[A-Za-z]+(?:'[A-Za-z]+)?)|(?P<other>\S)"
)

NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred hundreds "
    "thousand thousands million millions billion dozen dozens second third fourth fifth sixth seventh eighth "
    "ninth tenth half halves quarter quarters thirds once twice thrice double triple".split()
)
MATH_WORDS = frozenset(
    "total totals each per sum times more less fewer percent percentage plus minus multiply multiplied divide "
    "divided add added adding subtract subtracted subtracting remaining remain remains left difference product "
    "quotient average rate ratio fraction altogether combined equal equals equally increase increased decrease "
    "decreased many much number amount cost costs price prices profit earn earns earned pay pays paid spend "
    "spends spent sell sells sold buy buys bought twice split share shared every square area perimeter value "
    "minimum maximum least most extra another than".split()
)
PRONOUNS = frozenset(
    "he she it they him her them his hers its their theirs this that these those himself herself itself "
    "themselves who whom whose which one's".split()
)
META_WORDS = frozenset(
    "so therefore thus hence first firstly then next now finally lastly we us our let let's lets need needs "
    "know known answer means mean since because given find calculate compute computed step steps solve "
    "question i me my also however wait check note recall get gets result overall conclusion".split()
)
GRAMMAR_WORDS = frozenset(
    "a an the of to in on at for with by from and or but nor is are was were be been being has have had do "
    "does did will would can could shall should may might must how what when where why if as into onto than "
    "not no yes there here up down out over under about after before all some any other such only just very "
    "own same both either neither while until during per".split()
)


def token_lines(tokens: Sequence[str]) -> list[int]:
    """Line (reasoning step) index of each token: the newlines in the tokens before it.

    A token holding a newline ends its line (the newline belongs to the step it closes); a token
    with several newlines ("\\n\\n") advances the index by that many, so indices may skip values.
    """
    out, line = [], 0
    for t in tokens:
        out.append(line)
        line += t.count("\n")
    return out


def token_steps(tokens: list[str]) -> np.ndarray:
    """Reasoning step (line) of each token, int [n], 0-based and contiguous (`token_lines`,
    with the indices that blank lines skip closed up)."""
    _, dense = np.unique(np.asarray(token_lines(tokens), dtype=np.int64), return_inverse=True)
    return dense.reshape(-1)


def token_flags(token: str) -> dict[str, bool]:
    """Surface flags of one decoded token string (see FLAG_NAMES)."""
    core = token.strip()
    return {
        "is_digit": any(ch.isdigit() for ch in core),
        "is_operator": bool(core) and all(ch in OPERATOR_CHARS for ch in core),
        "is_punct": bool(core) and all(not ch.isalnum() and ch not in OPERATOR_CHARS for ch in core),
        "is_space": not core,
        "starts_word": token[:1].isspace() if token else False,
        "has_newline": "\n" in token,
        "is_upper": core[:1].isupper(),
    }


def _spans(tokens: Sequence[str]) -> tuple[list[tuple[int, int, str, str]], list[tuple[int, int]]]:
    """Word spans (start, end, kind, text) of the joined text, and each token's char range in it."""
    bounds, pos = [], 0
    for t in tokens:
        bounds.append((pos, pos + len(t)))
        pos += len(t)
    text = "".join(tokens)
    spans = [(m.start(), m.end(), m.lastgroup, m.group()) for m in _SPAN.finditer(text)]
    return spans, bounds


def token_words(tokens: Sequence[str]) -> list[int]:
    """Index of the word span each token belongs to (the first span it overlaps), -1 for whitespace tokens."""
    spans, bounds = _spans(tokens)
    out, j = [], 0
    for a, b in bounds:
        while j < len(spans) and spans[j][1] <= a:
            j += 1
        out.append(j if j < len(spans) and spans[j][0] < b else -1)
    return out


def _question_words(question: str) -> tuple[set[str], set[str]]:
    words = re.findall(r"[A-Za-z]+(?:'[A-Za-z]+)?", question)
    return {w.lower() for w in words}, {w for w in words if w[:1].isupper()}


def _word_category(kind: str, text: str, sentence_start: bool, q_lower: set[str], q_caps: set[str]) -> str:
    if kind in ("num", "op"):
        return "symbolic_math"
    if kind != "word":
        return "grammatical"
    low = text.lower()
    if low in NUMBER_WORDS or low in MATH_WORDS:
        return "verbal_math"
    if low in PRONOUNS:
        return "coreference"
    if low in META_WORDS:
        return "meta_discourse"
    if text[:1].isupper() and not sentence_start:  # "May" mid-sentence is a name, not the modal
        return "entity_name"
    if low in GRAMMAR_WORDS:
        return "grammatical"
    if text[:1].isupper() and text in q_caps:
        return "entity_name"
    if len(low) >= 3 and low in q_lower:
        return "entity_name"
    return "grammatical"


def categorize(tokens: Sequence[str], question: str = "") -> list[str]:
    """Functional category (one of CATEGORIES) of every token; question words mark entity names."""
    spans, _ = _spans(tokens)
    text = "".join(tokens)
    q_lower, q_caps = _question_words(question)
    cats = []
    for a, _, kind, word in spans:
        j = a - 1
        while j >= 0 and text[j] in " \t":
            j -= 1
        sentence_start = j < 0 or text[j] in ".!?:\n"
        cats.append(_word_category(kind, word, sentence_start, q_lower, q_caps))
    return ["grammatical" if w < 0 else cats[w] for w in token_words(tokens)]


def function_category(tokens: Sequence[str], i: int, question: str = "") -> str:
    """Functional category of token i, judged by the whole word it belongs to."""
    return categorize(tokens, question)[i]


def word_ids(tokens: Sequence[str]) -> tuple[list[int], list[str]]:
    """(word span index per token, -1 for whitespace; lowercased text of each word span)."""
    spans, _ = _spans(tokens)
    return token_words(tokens), [s[3].lower() for s in spans]
