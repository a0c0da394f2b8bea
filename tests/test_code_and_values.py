"""Code and compound values in pruned text (issue 29, kinds 1 and 2).

Code: fenced blocks and inline code spans are units kept or removed whole whatever is protected, so
fences stay balanced and on their own lines at every keep ratio; the "code" preset keeps every block
verbatim. Values: "numbers" and "math" keep compound values whole (mixed numbers, fractions, times,
powers, scientific notation, unicode fractions and superscripts, units glued or after a space, CJK unit
words), and a removed gap never makes two kept values read as one: the values of the pruned text are
a sub-list of the reasoning's under the compound-value regex (`VALUE`) for any kept set of units.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from predictor.chains import as_chain
from predictor.layout import encode_chain
from predictor.pruning_units import (FENCED_CODE, INLINE_CODE, VALUE, VALUE_SEPARATOR, check_protect, code_spans,
                                     join_units, pruning_units)
from predictor.rank_predictor import RankPredictor, prune

RATIOS = [r / 20 for r in range(1, 21)]

CODE = {"id": "code", "question": "Sum the list [1, 2].",
        "reasoning": "We sum the list with a loop:\n```python\ndef total(p):\n    s = 0\n    for x in p:\n"
                     "        s += x\n    return s\n```\nThen `total([1, 2])` gives 3, and ``a`b`` is code too.\n"
                     "~~~\nif x:\n\ty = 2\n~~~\nA second block:\n```\nprint(total([1, 2]))\n```\nSo the answer is 3.",
        "answer": "3"}
VALUES = {"id": "values", "question": "Mix it.",
          "reasoning": "Take 3 1/2 cups at 2:30 or 3:45 pm, then 10^3 and 1.5e-3 and 10² m² with 1 ½ m of rope; "
                       "drive 40km at 5 km/h × 2 h, or 3 × 10^8 m/s, so 40公里 and 5支笔 cost ￥12元, "
                       "with 7/8 left and 1/2 3/4 of 25 °C, 50% off $1,234.50 and -4 at 2024/03/15.",
          "answer": "3"}


@pytest.fixture(scope="module")
def rp(tiny_lm):
    return RankPredictor.load("surprisal", lm=tiny_lm)


def is_sublist(sub: list, full: list) -> bool:
    it = iter(full)
    return all(any(x == y for y in it) for x in sub)


def values(text: str) -> list[str]:
    return VALUE.findall(text)


def blocks(text: str) -> list[str]:
    return [m.group() for m in FENCED_CODE.finditer(text)]


def inline(text: str) -> list[str]:
    return [text[a:b] for a, b in code_spans(text) if not text[a:b].startswith(("```", "~~~"))]


def fences_ok(text: str, original: str) -> None:
    """Fences balanced, each on its own line, each block one of the original's, verbatim."""
    for fence in ("```", "~~~"):
        marks = [m.start() for m in re.finditer(re.escape(fence), text)]
        assert len(marks) % 2 == 0, text
        for i, at in enumerate(marks):
            assert at == 0 or text[at - 1] == "\n", text  # opening and closing fences start their line
            if i % 2 == 1:  # a closing fence ends its line
                assert text[at + 3: at + 4] in ("", "\n"), text
    assert set(blocks(text)) <= set(blocks(original)), text
    assert set(inline(text)) <= set(inline(original)), text


def test_code_spans_are_found_whole():
    text = CODE["reasoning"]
    assert blocks(text) == ["```python\ndef total(p):\n    s = 0\n    for x in p:\n        s += x\n    return s\n```",
                            "~~~\nif x:\n\ty = 2\n~~~", "```\nprint(total([1, 2]))\n```"]
    assert inline(text) == ["`total([1, 2])`", "``a`b``"]
    assert blocks("open:\n```\nx = 1\nno close") == ["```\nx = 1\nno close"]  # an unclosed fence runs to the end
    assert blocks("write ``` fences around code, then 3 more words") == []  # a fence starts its line
    assert blocks("x\n```\na ``` b\n```\ny") == ["```\na ``` b\n```"]
    assert [m.group() for m in INLINE_CODE.finditer("a ` lone tick and `x` y")] == ["` lone tick and `"]


@pytest.mark.parametrize("protect", [None, "code"])
def test_code_blocks_and_spans_are_single_units(tokenizer, protect):
    ids = encode_chain(tokenizer, as_chain(CODE)).reasoning_ids
    units = pruning_units(tokenizer, ids, protect)
    for piece in blocks(CODE["reasoning"]) + inline(CODE["reasoning"]):
        holders = [u for u, t in enumerate(units.texts) if piece in t]
        assert len(holders) == 1, piece
        assert bool(units.protected[holders[0]]) == (protect == "code")
    assert "".join(units.texts) == CODE["reasoning"]


@pytest.mark.parametrize("protect", [None, "numbers", "math", "digits"])
def test_fences_balanced_at_every_ratio(rp, protect):
    """Kind 1: for every keep ratio (plain and step-aware), fences come in pairs, each on its own line,
    and every kept block or inline span is one of the reasoning's, verbatim (indentation included)."""
    for step_aware in (False, True):
        for ratio in RATIOS:
            res = prune(CODE, ratio, predictor=rp, protect=protect, step_aware=step_aware)
            fences_ok(res.text, CODE["reasoning"])


def test_fences_stay_on_their_lines_for_any_kept_set(tokenizer):
    """Kind 1: whatever units are kept, a removed newline before an opening or after a closing fence is
    written back, so a kept block still renders as a block."""
    ids = encode_chain(tokenizer, as_chain(CODE)).reasoning_ids
    units = pruning_units(tokenizer, ids, None)
    rng = np.random.default_rng(0)
    for _ in range(500):
        keep = np.flatnonzero(rng.random(len(units.texts)) < rng.random()).tolist()
        if keep:
            fences_ok(join_units(units.texts, keep), CODE["reasoning"])
    assert join_units(["so", ":\n", "```\nx\n```", "\n", "then"], [0, 2, 4]) == "so\n```\nx\n```\nthen"


def test_code_preset_keeps_every_block_verbatim(rp):
    """Kind 1: protect="code" keeps every fenced block and inline span, verbatim, at every ratio;
    "code+numbers" keeps the values outside code too."""
    want = blocks(CODE["reasoning"]) + inline(CODE["reasoning"])
    for ratio in RATIOS:
        text = prune(CODE, ratio, predictor=rp, protect="code").text
        assert all(piece in text for piece in want), (ratio, text)
        assert "    s += x\n    return s" in text  # line structure: newline + indentation
        both = prune(CODE, ratio, predictor=rp, protect="code+numbers").text
        assert all(piece in both for piece in want) and both.rstrip(".").endswith("3"), (ratio, both)
    assert prune(CODE, 0.05, predictor=rp, protect=["code", "numbers"]).text == \
        prune(CODE, 0.05, predictor=rp, protect="code+numbers").text


def test_combined_presets_are_checked():
    check_protect("code+math")
    check_protect(["digits", "code"])
    with pytest.raises(ValueError, match=r"unknown protect preset 'cod'; choose from digits, numbers, math, code"):
        check_protect("numbers+cod")


def test_value_pattern_reads_compound_values_whole():
    assert values(VALUES["reasoning"]) == [
        "3 1/2", "2:30", "3:45 pm", "10^3", "1.5e-3", "10² m²", "1 ½ m", "40km", "5 km/h", "2 h", "3 × 10^8 m/s",
        "40公里", "5支", "￥12元", "7/8", "1/2", "3/4", "25 °C", "50%", "$1,234.50", "-4", "2024/03/15"]
    # not units: words after a space, "in", "am" after "I"
    assert values("5 apples, 3 in the box, I am 7 at 5 pm") == ["5", "3", "7", "5 pm"]


@pytest.mark.parametrize("protect", ["numbers", "math"])
def test_presets_keep_compound_values_whole_at_every_ratio(rp, protect):
    """Kind 2: with "numbers" and "math", the pruned text's values are the reasoning's, each whole."""
    want = values(VALUES["reasoning"])
    for ratio in RATIOS:
        text = prune(VALUES, ratio, predictor=rp, protect=protect).text
        assert values(text) == want, (ratio, text)
        assert "公" not in text.replace("40公里", ""), text  # never a torn CJK unit word


def test_math_never_keeps_half_of_a_unit(rp, tokenizer):
    """Kind 2: "/" is an operator under "math", but between two words ("km/h" without a number before
    it, "and/or") it is part of one unit: kept with both words or removed with them."""
    chain = {"id": "slash", "question": "q", "reasoning": "Speed in km/h and/or m/s is x/y = 4 / 2 here.",
             "answer": "2"}
    ids = encode_chain(tokenizer, as_chain(chain)).reasoning_ids
    units = pruning_units(tokenizer, ids, "math")
    for word in ("km/h", "and/or", "m/s", "x/y"):
        assert any(word in t for t in units.texts), (word, units.texts)
    for ratio in RATIOS:
        text = prune(chain, ratio, predictor=rp, protect="math").text
        # a slash with a letter on one side only would be half a "km/h" (the chain has no such slash)
        assert not re.search(r"[A-Za-z]/(?![A-Za-z])|(?<![A-Za-z])/[A-Za-z]", text), (ratio, text)
        assert "/" in text and "=" in text  # operators stay


@pytest.mark.parametrize("protect", [None, "digits", "numbers", "math"])
def test_kept_values_never_read_as_one_for_any_kept_set(tokenizer, protect):
    """Kind 2: for any kept set of units, the values of the pruned text are a sub-list of the
    reasoning's under `VALUE` (with "numbers" / "math" whole values; without, pieces whose junctions
    never form a new value): "3" ... "7/8" is never "3 7/8", "5" ... "km" never "5 km"."""
    text = VALUES["reasoning"] + " So 3 apples and 7/8 pies, 5 cars km, 10 then ², 1 and ½."
    ids = encode_chain(tokenizer, as_chain({**VALUES, "reasoning": text})).reasoning_ids
    units = pruning_units(tokenizer, ids, protect)
    want = values(text)
    rng = np.random.default_rng(1)
    for _ in range(1000):
        keep = sorted(set(np.flatnonzero(units.protected).tolist())
                      | set(np.flatnonzero(rng.random(len(units.texts)) < rng.random()).tolist()))
        got = values(join_units(units.texts, keep))
        if protect in ("numbers", "math"):
            assert is_sublist(got, want), join_units(units.texts, keep)
        else:  # values torn token by token: still no digit run glued from two numbers
            runs = re.findall(r"\d+", join_units(units.texts, keep))
            assert all(any(r in o for o in re.findall(r"\d+", text)) for r in runs), join_units(units.texts, keep)


def test_value_separator_only_where_a_space_would_join_values():
    texts = ["3", " apples", " and", " 7/8", " left", "3:45 pm", " then", " ", "7/8", "4", "5", " km"]
    assert join_units(texts, [0, 3]) == "3" + VALUE_SEPARATOR.rstrip() + " 7/8"  # "3 7/8" is a mixed number
    assert join_units(texts, [5, 8]) == "3:45 pm 7/8"  # a space is enough: a time and a fraction
    assert join_units(texts, [0, 9]) == "3 4"  # glued digits: a space, as before
    assert join_units(texts, [10, 11]) == "5 km"  # adjacent: the text as written
    assert join_units(texts, [9, 11]) == "4" + VALUE_SEPARATOR.rstrip() + " km"  # "4 km" would be a value
    assert "…" not in "".join(texts) and not VALUE.search(VALUE_SEPARATOR)
