"""Rule-based lexical flags and the six functional categories on clear cases."""
from __future__ import annotations

from predictor.lexical import CATEGORIES, FLAG_NAMES, categorize, function_category, token_flags


def test_token_flags():
    assert token_flags("7")["is_digit"] and token_flags(" 12")["is_digit"]
    assert token_flags(" =")["is_operator"] and token_flags("+")["is_operator"] and not token_flags(" x")["is_operator"]
    assert token_flags(".")["is_punct"] and token_flags(",")["is_punct"] and not token_flags("+")["is_punct"]
    assert token_flags(" ")["is_space"] and token_flags("\n")["is_space"] and token_flags("\n")["has_newline"]
    assert token_flags(" apples")["starts_word"] and not token_flags("ples")["starts_word"]
    assert token_flags(" Tom")["is_upper"] and not token_flags(" tom")["is_upper"]
    assert set(token_flags("")) == set(FLAG_NAMES) and not any(token_flags("")[f] for f in FLAG_NAMES if f != "is_space")


def test_categories_clear_cases():
    q = "Natalia sold clips to 48 of her friends in April."
    toks = ["N", "atal", "ia", " sold", " 4", "8", " clips", " in", " May", ".", "\n", "So", " she", " sold",
            " half", " as", " many", ":", " 48", "/", "2", " =", " 24", ".", " Therefore", " they", " cost", " $", "5", "."]
    c = categorize(toks, q)
    assert len(c) == len(toks) and set(c) <= set(CATEGORIES)
    expect = {0: "entity_name", 1: "entity_name", 2: "entity_name",  # subwords follow their word
              4: "symbolic_math", 5: "symbolic_math", 6: "entity_name",  # "clips" appears in the question
              7: "grammatical", 8: "entity_name",  # capitalized mid-sentence
              9: "grammatical", 10: "grammatical", 11: "meta_discourse", 12: "coreference",
              14: "verbal_math", 15: "grammatical", 16: "verbal_math", 19: "symbolic_math", 21: "symbolic_math",
              24: "meta_discourse", 25: "coreference", 26: "verbal_math", 27: "symbolic_math", 28: "symbolic_math"}
    for i, cat in expect.items():
        assert c[i] == cat, (i, toks[i], c[i], cat)
    assert function_category(toks, 12, q) == "coreference"


def test_subwords_and_decimals_take_the_whole_word():
    toks = [" Each", " doll", "ars", " is", " 1", "2", ".", "5", "0", " twice", " total", "ly"]
    c = categorize(toks)
    assert c[1] == c[2] == "grammatical"
    assert c[4:9] == ["symbolic_math"] * 5  # the decimal point inside a number is part of it
    assert c[0] == c[9] == "verbal_math" and c[10] == c[11]  # "totally" is one word, not "total"


def test_sentence_start_capital_is_not_an_entity_unless_in_question():
    assert categorize(["Apples", " are", " red", "."])[0] == "grammatical"
    assert categorize(["Apples", " are", " red", "."], "Tom likes Apples")[0] == "entity_name"
    assert categorize(["The", " cat"], "The cat")[0] == "grammatical"
