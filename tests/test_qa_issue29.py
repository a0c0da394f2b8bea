"""QA pass on issue 29 (code, compound values, formats, pipes, budgets, text identity): inputs the first
round did not try, each a defect found and fixed here."""
from __future__ import annotations

import numpy as np
import pytest

from predictor.chains import as_chain
from predictor.layout import encode_chain
from predictor.pruning_units import VALUE, VALUE_SEPARATOR, join_units, pruning_units


def is_sublist(sub: list, full: list) -> bool:
    it = iter(full)
    return all(any(x == y for y in it) for x in sub)


def units_of(tokenizer, text: str, protect):
    chain = as_chain({"id": "qa", "question": "q", "reasoning": text, "answer": "a"})
    return pruning_units(tokenizer, encode_chain(tokenizer, chain).reasoning_ids, protect)


def random_kept_values(units, text: str, tries: int = 1500, seed: int = 1):
    """(pruned text, its values) for random kept sets that hold every protected unit."""
    rng = np.random.default_rng(seed)
    for _ in range(tries):
        keep = sorted(set(np.flatnonzero(units.protected).tolist())
                      | set(np.flatnonzero(rng.random(len(units.texts)) < rng.random()).tolist()))
        s = join_units(units.texts, keep)
        yield s, VALUE.findall(s)


def test_a_value_over_two_junctions_is_not_made_by_a_whitespace_gap():
    """'4' [then] ' ×' [ ] '10^8': the first junction sees only ' ×', the second removed only a space,
    but the space would make '4 × 10^8', a value the reasoning does not hold there."""
    texts = ["4", " then", " ×", " ", "10^8", "."]
    got = join_units(texts, [0, 2, 4, 5])
    assert VALUE.findall(got) == ["4", "10^8"], got  # not "4 × 10^8"
    assert join_units(texts, [2, 3, 4]) == " × 10^8"  # adjacent: as written
    assert join_units(["4", " ×", " ", "10^8"], [0, 1, 3]) == "4 × 10^8"  # only a space removed: as the original


@pytest.mark.parametrize("protect", ["numbers", "math"])
def test_kept_values_are_the_reasonings_for_any_kept_set_over_several_junctions(tokenizer, protect):
    text = "Value 5 then mm, 5 then m/s, 12 then °C, 3 then ×10^8, 4 then × 10^8."
    want = VALUE.findall(text)
    for s, got in random_kept_values(units_of(tokenizer, text, protect), text):
        assert is_sublist(got, want), s


@pytest.mark.parametrize("protect", ["numbers", "math"])
def test_dotted_dates_versions_and_thousands_are_one_value(tokenizer, protect):
    """'15.03.2024' (a date as German or Russian text writes it), 'v1.2.3', '192.168.0.1' and
    '1.234.567' were kept as '15.03 2024', '1.2 3': the dot between two kept parts went."""
    text = "Am 15.03.2024 kamen 1.234.567 Leute, Version v1.2.3 auf 192.168.0.1 mit 3.5 GB."
    want = ["15.03.2024", "1.234.567", "1.2.3", "192.168.0.1", "3.5 GB"]
    assert VALUE.findall(text) == want
    units = units_of(tokenizer, text, protect)
    for piece in want:
        assert any(piece in t for t in units.texts), (piece, units.texts)
    for s, got in random_kept_values(units, text, tries=300):
        assert got == want, s


def test_cli_protect_takes_the_code_preset_and_combinations(capsys):
    """`predictor prune --protect code` (the issue's code preset) and 'code+numbers' were refused by
    argparse ("invalid choice: 'code'"); an unknown name is still refused, naming the presets."""
    from predictor.cli import build_parser

    parser = build_parser()
    base = ["prune", "--in", "c.jsonl", "--out", "o.jsonl", "--keep", "0.5"]
    for preset in ("code", "code+numbers", "math+code", "numbers", "digits"):
        assert parser.parse_args(base + ["--protect", preset]).protect == preset
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--protect", "cod"])
    assert "unknown protect preset 'cod'; choose from digits, numbers, math, code" in capsys.readouterr().err


@pytest.mark.parametrize("protect", ["numbers", "math"])
def test_cjk_unit_per_unit_is_kept_whole(tokenizer, protect):
    """'40公里/小时' under math kept '40公里/' and the operator '/' without '小时', so the pruned text read
    '40公里/3小时' (40 km divided by 3 hours); a CJK unit word over a CJK unit word is one value, like
    '5 km/h', and '公里/小时' without a number is one unit (never half of it)."""
    text = "他每小时走40公里/小时，共3小时。速度单位是公里/小时，即5米／秒。"
    assert VALUE.findall(text) == ["40公里/小时", "3小时", "5米／秒"]
    units = units_of(tokenizer, text, protect)
    assert "40公里/小时" in units.texts and "公里/小时" in units.texts
    for s, got in random_kept_values(units, text, tries=300):
        assert got == ["40公里/小时", "3小时", "5米／秒"], s
        assert s.count("/") == s.count("公里/小时"), s
