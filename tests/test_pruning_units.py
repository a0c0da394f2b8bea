"""Pruned text stays valid: whole characters (CJK), whole numbers and LaTeX, whole think tags, no
glued numbers; protected tokens over the budget; threshold + protect."""
from __future__ import annotations

import re

import numpy as np
import pytest

from predictor.chains import as_chain
from predictor.layout import encode_chain
from predictor.pruning import keep_count
from predictor.rank_predictor import prune
from predictor.pruning_units import LATEX, NUMBER, char_groups, join_units, pruning_units
from predictor.rank_predictor import RankPredictor

RATIOS = [r / 20 for r in range(1, 21)]

CJK = {"id": "zh", "question": "小明有几支铅笔？",
       "reasoning": "小明有5支铅笔，送给小红3支。5 + 3 = 8。東京都の日本語テキスト😀も含む。", "answer": "8"}
NUMBERS = {"id": "num", "question": "What is the total?",
           "reasoning": "The bill is $1,234.50 and the tip is 3.5 dollars, then -4 and 50% off: "
                        "1,234.50 + 3.5 - 4 = 1,234.00 and 2 3 4 5 remain.", "answer": "1234"}
MATH = {"id": "tex", "question": "Compute.",
        "reasoning": r"We need \frac{1}{2} + \sqrt{16} which is $x^2 + 3$ and then \(a_1 = 7\) so 7 * 13 = 91.",
        "answer": "91"}
THINK = {"id": "r1", "question": "What is 7 * 13?",
         "reasoning": "<think>\n7 * 13 is 91, since 7 * 10 = 70 and 7 * 3 = 21.\n</think>\nThe result is 91.",
         "answer": "91"}


@pytest.fixture(scope="module")
def rp(tiny_lm):
    return RankPredictor.load("surprisal", lm=tiny_lm)


def numbers(text: str) -> list[str]:
    return NUMBER.findall(text)


def is_sublist(sub: list, full: list) -> bool:
    it = iter(full)
    return all(any(x == y for y in it) for x in sub)


def test_char_groups_decode_to_whole_characters(tokenizer):
    ids = encode_chain(tokenizer, as_chain(CJK)).reasoning_ids
    groups = char_groups(tokenizer, ids)
    assert sum(len(g) for g in groups) == len(ids) and any(len(g) > 1 for g in groups)
    texts = [tokenizer.decode([ids[i] for i in g]) for g in groups]
    assert all("\ufffd" not in t for t in texts) and "".join(texts) == CJK["reasoning"]


def test_cjk_pruned_text_has_no_broken_characters_at_any_ratio(rp):
    """Kind 1: pruning units. For every keep ratio: no U+FFFD, whole units kept, budget kept exactly
    or at most (largest unit - 1) tokens over, never under."""
    n = len(encode_chain(rp.lm.tokenizer, as_chain(CJK)).reasoning_ids)
    units = pruning_units(rp.lm.tokenizer, encode_chain(rp.lm.tokenizer, as_chain(CJK)).reasoning_ids)
    biggest = max(len(g) for g in units.groups)
    for step_aware in (False, True):
        for ratio in RATIOS:
            res = prune(CJK, ratio, predictor=rp, step_aware=step_aware)
            assert "\ufffd" not in res.text, (ratio, res.text)
            kept = set(res.kept)
            assert all(set(g) <= kept or not set(g) & kept for g in units.groups)
            k = keep_count(n, ratio)
            assert res.budget == k and k <= len(res.kept) <= k + biggest - 1
            assert set(res.text) <= set(CJK["reasoning"])  # only characters of the reasoning (spaces included)


def test_number_pattern_reads_commas_as_thousands_separators_only():
    assert numbers("$1,234,567.50 and 1,234 but 1,2,3 and 12,34 or 3.14.") == [
        "$1,234,567.50", "1,234", "1", "2", "3", "12", "34", "3.14"]
    assert numbers("-4 and 50% of 1,2345") == ["-4", "50%", "1", "2345"]


def test_numbers_preset_keeps_every_number_whole(rp):
    """Kind 2: with protect="numbers", the numbers of the pruned text are exactly those of the reasoning."""
    want = numbers(NUMBERS["reasoning"])
    assert want[:4] == ["$1,234.50", "3.5", "-4", "50%"]
    for ratio in RATIOS:
        res = prune(NUMBERS, ratio, predictor=rp, protect="numbers")
        assert numbers(res.text) == want, (ratio, res.text)


@pytest.mark.parametrize("protect", [None, "digits", "numbers", "math"])
def test_kept_numbers_never_merge(rp, protect):
    """Kind 2: whatever is protected, each number of the pruned text is a piece of one number of the
    reasoning (never two glued together), in order."""
    originals = re.findall(r"\d+", NUMBERS["reasoning"])
    for ratio in RATIOS:
        text = prune(NUMBERS, ratio, predictor=rp, protect=protect).text
        runs = re.findall(r"\d+", text)
        assert all(any(r in o for o in originals) for r in runs), (protect, ratio, text)
        if protect in ("numbers", "math"):
            assert is_sublist(numbers(text), numbers(NUMBERS["reasoning"]))


def test_math_preset_keeps_latex_and_operators_whole(rp):
    """Kind 2: protect="math" keeps every LaTeX command with its braces, paired delimiters, numbers, operators."""
    spans = [m.group() for m in LATEX.finditer(MATH["reasoning"])]
    assert r"\frac{1}{2}" in spans and r"\sqrt{16}" in spans and "$x^2 + 3$" in spans and r"\(a_1 = 7\)" in spans
    for ratio in RATIOS:
        text = prune(MATH, ratio, predictor=rp, protect="math").text
        assert all(s in text for s in spans), (ratio, text)
        assert numbers(text) == numbers(MATH["reasoning"])
        assert "*" in text and "=" in text


def test_think_tags_stay_whole_and_balanced(rp):
    """Kind 2: <think> and </think> are never cut: for every ratio both stay whole, in order."""
    for protect in (None, "digits"):
        for ratio in RATIOS:
            text = prune(THINK, ratio, predictor=rp, protect=protect).text
            assert text.count("<think>") == 1 and text.count("</think>") == 1
            assert text.index("<think>") < text.index("</think>")
            rest = re.sub(r"</?think>", "", text)
            assert "think" not in rest and "<" not in rest and ">" not in rest, (ratio, text)


def test_protected_tokens_over_budget_are_all_kept(rp):
    """Kind 2: more protected tokens than the budget: every one is kept, the achieved ratio reported."""
    n = len(encode_chain(rp.lm.tokenizer, as_chain(NUMBERS)).reasoning_ids)
    units = pruning_units(rp.lm.tokenizer, encode_chain(rp.lm.tokenizer, as_chain(NUMBERS)).reasoning_ids, "numbers")
    protected = np.flatnonzero(units.protected_tokens()).tolist()
    res = prune(NUMBERS, 0.05, predictor=rp, protect="numbers")
    assert res.kept == protected and res.over_budget and res.budget == keep_count(n, 0.05)
    assert res.ratio == len(protected) / n


def test_threshold_with_protect_keeps_protected_plus_above_threshold(rp, chains):
    """Kind 4: the kept set under threshold + protect is the union of both."""
    chain = chains[1]
    tok = rp.lm.tokenizer
    toks = [tok.decode([t]) for t in encode_chain(tok, as_chain(chain)).reasoning_ids]
    digits = {i for i, t in enumerate(toks) if any(c.isdigit() for c in t)}
    scores = rp.score(chain)
    norm = (scores - scores.min()) / (scores.max() - scores.min())
    for t in (0.0, 0.3, 0.6, 0.9, 1.0):
        above = set(np.flatnonzero(norm >= t).tolist())
        assert len(digits - above) > 0 or t == 0.0
        res = prune(chain, threshold=t, protect="digits", predictor=rp)
        assert res.kept == sorted(digits | above), t
        assert prune(chain, threshold=t, predictor=rp).kept == sorted(above)


NESTED_TEX = {"id": "nested-tex", "question": "Compute.",
              "reasoning": r"Bare \frac{\sqrt{x^{2}}}{2} and \frac{a}{\frac{b}{\frac{c}{d}}} equals \sqrt[3]{27} = 3, "
                           r"a line break \\[2pt] is no display math.", "answer": "3"}


def test_latex_commands_keep_nested_brace_groups_and_options(rp):
    """Kind 2 (QA): a command keeps all its brace groups however they nest, and its [option]; `\\\\[2pt]`
    (a LaTeX line break) does not open display math. Pruned with "math" at any ratio, braces stay balanced."""
    spans = [m.group() for m in LATEX.finditer(NESTED_TEX["reasoning"])]
    assert spans[:3] == [r"\frac{\sqrt{x^{2}}}{2}", r"\frac{a}{\frac{b}{\frac{c}{d}}}", r"\sqrt[3]{27}"]
    assert not any(s.startswith("\\[") for s in spans)
    for ratio in RATIOS:
        text = prune(NESTED_TEX, ratio, predictor=rp, protect="math").text
        assert all(s in text for s in spans[:3]), (ratio, text)


SIGNED = {"id": "signed", "question": "Sum it.",
          "reasoning": "a=3;b=(-$5) and c=4;d=(-€7) then x=2;y=(+5), 3 uses of the % sign and 10% tax, "
                       "so 3 + 4 - 5 = 2, x = a-5 at 3e-5 on 2024-03-15 for f(x)-3.", "answer": "2"}


@pytest.mark.parametrize("protect", ["numbers", "math"])
def test_gaps_never_glue_or_unsign_numbers(tokenizer, protect):
    """Kind 2 (QA): for any kept set of units, the pruned text's numbers are a sub-list of the
    reasoning's: a removed gap never glues "3" to "-$5" ("3-$5" reads 3 and $5), never drops a sign
    after a letter ("b" + "-$5"), never gives a number a percent sign ("3" + "%"), never turns a
    subtraction or hyphen into a sign ("= a-5" -> "= -5", "2024-03" -> " -03")."""
    ids = encode_chain(tokenizer, as_chain(SIGNED)).reasoning_ids
    units = pruning_units(tokenizer, ids, protect)
    want = numbers(SIGNED["reasoning"])
    assert "-$5" in want and "-€7" in want and "+5" in want
    rng = np.random.default_rng(0)
    for _ in range(1000):
        keep = sorted(set(np.flatnonzero(units.protected).tolist())
                      | set(np.flatnonzero(rng.random(len(units.texts)) < rng.random()).tolist()))
        text = join_units(units.texts, keep)
        assert is_sublist(numbers(text), want), text


GRAPHEMES = {"id": "graphemes", "question": "Count.",
             "reasoning": "Cafe\u0301 costs 5 and the nai\u0308ve one 3; नमस्ते दुनिया 4; "
                          "👨\u200d👩\u200d👧\u200d👦 and 👍🏽 and 3️⃣ and 🇯🇵 total 14.", "answer": "14"}


def test_units_are_whole_grapheme_clusters(rp):
    """Kind 1 (QA): a combining accent, a Devanagari vowel sign, a ZWJ family, a skin tone, a keycap,
    a flag stay with their base: at every ratio, each grapheme cluster of the pruned text is one of
    the reasoning's (no orphaned mark, no half family emoji)."""
    import regex

    clusters = set(regex.findall(r"\X", GRAPHEMES["reasoning"]))
    units = pruning_units(rp.lm.tokenizer, encode_chain(rp.lm.tokenizer, as_chain(GRAPHEMES)).reasoning_ids)
    for whole in ("afe\u0301", "ai\u0308", "👍🏽", "3\ufe0f\u20e3", "🇯🇵", "👨\u200d👩\u200d👧\u200d👦"):
        assert any(whole in t for t in units.texts), (whole, units.texts)
    for protect in (None, "numbers"):
        for ratio in RATIOS:
            text = prune(GRAPHEMES, ratio, predictor=rp, protect=protect).text
            assert set(regex.findall(r"\X", text)) <= clusters | {" "}, (ratio, text)


def test_chain_objects_are_validated_like_mappings(rp, chains):
    """QA: a `Chain` built directly with a lone surrogate or a non-string field is a ChainFormatError
    naming its list index (a ChainFailure with errors="skip"), not a TypeError from the tokenizer."""
    from predictor.chain_lists import ChainFailure
    from predictor.chains import Chain, ChainFormatError

    cut = Chain("q", "It costs 5 \ud83d dollars.", "5", "cut")
    with pytest.raises(ChainFormatError, match=r"^chain: field 'reasoning' is not valid Unicode: lone surrogate U\+D83D"):
        prune(cut, 0.5, predictor=rp)
    out = prune([chains[0], cut, Chain("q", None, "a", "none")], 0.5, predictor=rp, errors="skip")
    assert out[0] and out[1] == ChainFailure(1, "cut", "chains[1]: field 'reasoning' is not valid Unicode: "
                                                       "lone surrogate U+D83D at character 12")
    assert out[2].error == "chains[2]: field 'reasoning' must be a string, got NoneType"
    assert isinstance(rp.predict_ranks([cut], errors="skip")[0], ChainFailure)


def test_bad_protect_values_and_numpy_budgets(rp, chains):
    """QA: protect=3 is a ValueError saying what protect may be; keep_tokens=np.int64 gives a plain
    int budget (JSON-serializable)."""
    import json

    with pytest.raises(ValueError, match=r"^protect must be a preset name \(digits, numbers, math, code\), a predicate"):
        prune(chains[0], 0.5, protect=3, predictor=rp)
    res = prune(chains[0], keep_tokens=np.int64(3), predictor=rp)
    assert type(res.budget) is int and json.dumps(res.budget) == "3" and len(res.kept) == 3


CJK_MONEY = {"id": "zh-money", "question": "价格是多少？",
             "reasoning": "价格是￥1,234.50元，增长了12％，又便宜了₹300。所以 1,234.50 × 1.12 = 1,382.64。",
             "answer": "1382.64"}


def test_numbers_preset_knows_full_width_percent_and_yen(rp):
    """Kind 2 (QA): CJK text writes ％ and ￥ full-width; "numbers" keeps them with their digits."""
    want = numbers(CJK_MONEY["reasoning"])
    assert want[:3] == ["￥1,234.50", "12％", "₹300"]
    for ratio in RATIOS:
        text = prune(CJK_MONEY, ratio, predictor=rp, protect="numbers").text
        assert numbers(text) == want and "\ufffd" not in text, (ratio, text)


def test_gaps_that_held_whitespace_never_glue_two_words():
    """A removed gap that held whitespace between two kept words ("work" ... "100%", "Jaydee" ...
    "4560") keeps a space between them; a gap without whitespace (CJK text, parts of one word) adds
    none, and kept whitespace is not doubled."""
    texts = ["Jaydee", " can", " type", "4560", "/", "38", " =", " 120", " so", " work", " is", " ", "100", "%"]
    assert join_units(texts, [0, 3, 4, 5]) == "Jaydee 4560/38"
    assert join_units(texts, [9, 12, 13]) == " work 100%"
    assert join_units(texts, [0, 2, 3]) == "Jaydee type4560"  # adjacent kept units: the text as written
    assert join_units(texts, [0, 11, 12]) == "Jaydee 100"  # the kept " " already separates them
    assert join_units(["汤姆", "有", "苹果"], [0, 2]) == "汤姆苹果"
    assert join_units(["ab", "cd", "ef"], [0, 2]) == "abef"


def test_tiny_budgets_keep_the_top_ranked_units_under_default_contiguity(rp, monkeypatch):
    """Kind 5 (issue 29): with a predictor's default contiguity (gap cost 2, position weight 0.25, as
    shipped) a budget of at most SMALL_BUDGET_TOKENS keeps the top-ranked units, not the first or last
    token; an explicit gap cost still applies, and larger budgets use the defaults."""
    from predictor.contiguous_selection import rank_values, select_kept_contiguous
    from predictor.pruning import SMALL_BUDGET_TOKENS

    monkeypatch.setattr(RankPredictor, "prune_defaults", property(lambda self: {"gap_cost": 2.0, "position_weight": 0.25}))
    chain = {"id": "tom", "question": "Tom has 3 apples and buys 4 more. How many?",
             "reasoning": "Tom has 3 apples. He buys 4 more. So he has 7 apples in all.", "answer": "7"}
    ranks = rp.predict_ranks(chain)
    n = len(ranks)
    top = int(np.argmax(ranks))
    assert 0 < top < n - 1  # the top-ranked token is neither the first nor the last
    assert prune(chain, keep_tokens=1, predictor=rp).kept == [top]
    for k in range(1, SMALL_BUDGET_TOKENS + 1):
        res = prune(chain, keep_tokens=k, predictor=rp)
        assert set(res.kept) == set(np.flatnonzero(ranks > n - k).tolist()), k
        assert res.gap_cost == 2.0  # the records still name the settings in force
    assert prune(chain, keep_tokens=1, predictor=rp, gap_cost=2.0).kept in ([0], [n - 1])  # explicit: applies
    k = SMALL_BUDGET_TOKENS + 3
    assert prune(chain, keep_tokens=k, predictor=rp).kept == select_kept_contiguous(rank_values(ranks, 0.25), k, 2.0)


def test_protected_fill_tells_when_protection_crowds_the_budget(rp):
    """Kind 5 (issue 29): `protected_fill` is protected tokens / budget; at >= 0.9 a caller warns."""
    from predictor.pruning_units import crowded_by_protection, protected_fill, protection_warning

    ids = encode_chain(rp.lm.tokenizer, as_chain(NUMBERS)).reasoning_ids
    n_prot = int(pruning_units(rp.lm.tokenizer, ids, "numbers").protected_tokens().sum())
    crowded = prune(NUMBERS, 0.3, predictor=rp, protect="numbers")
    assert crowded.n_protected == n_prot and crowded.protected_fill == n_prot / crowded.budget >= 0.9
    assert crowded_by_protection(crowded.n_protected, crowded.budget)
    roomy = prune(NUMBERS, 0.9, predictor=rp, protect="numbers")
    assert roomy.protected_fill < 0.9 and not crowded_by_protection(roomy.n_protected, roomy.budget)
    plain = prune(NUMBERS, 0.3, predictor=rp)
    assert plain.n_protected == 0 and plain.protected_fill == 0.0
    assert protected_fill(9, 10) == 0.9 and crowded_by_protection(9, 10) and not crowded_by_protection(8, 10)
    assert protection_warning([], 3) is None
    assert protection_warning(["num"], 3, "numbers") == (
        "1 of 3 chain(s) spend >= 90% of the budget on protected tokens ('numbers'), so the ranks choose "
        "(almost) no other token: num; raise the budget or protect less")
