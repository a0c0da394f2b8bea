"""data/import_domain.py: answer declarations are cut from AQuA rationales; the committed queues are its output."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import load_script

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def importer():
    return load_script("data/import_domain.py")


@pytest.mark.parametrize("text,letter,option,want", [
    ("x = 5\nAnswer: C", "C", "5", "x = 5"),
    ("x = 5\nANSWER:C", "C", "5", "x = 5"),
    ("x = 5\nThe answer is C.", "C", "5", "x = 5"),
    ("x = 5\nC", "C", "5", "x = 5"),
    ("x = 5\nAnswer C)5", "C", "5", "x = 5"),
    ("x = 5 ==> the correct answer is C.", "C", "5", "x = 5 ==>"),
    ("x = 5. Thus, C is the correct answer", "C", "5", "x = 5"),
    ("x = 5\nHence (C) is correct answer.", "C", "5", "x = 5"),
    ("x = 5\nAnswer: D", "C", "5", "x = 5\nAnswer: D"),  # names another option: kept
    ("so the sum is A + B", "B", "9", "so the sum is A + B"),  # no declaration
])
def test_strip_declaration(importer, text, letter, option, want):
    assert importer.strip_declaration(text, letter, option) == want


def test_chain_fields(importer):
    aqua = importer.aqua_chain({"question": "Q?", "options": ["A)1", "B) 2 m"], "rationale": "1+1=2\nAnswer: B",
                                "correct": "B"}, "aqua-dev-0")
    assert aqua == {"id": "aqua-dev-0", "question": "Q?\nAnswer Choices: (A) 1 (B) 2 m", "reasoning": "1+1=2",
                    "answer": "2 m", "choice": "B"}
    sqa = importer.strategyqa_chain({"qid": "q", "question": " Q? ", "answer": False,
                                     "facts": ["A  fact", "Another one."]}, "strategyqa-train-3")
    assert sqa["reasoning"] == "A fact. Another one." and sqa["answer"] == "no" and sqa["question"] == "Q?"


@pytest.mark.parametrize("solution,want", [
    (r"So $x=\boxed{5}$.", (r"So $x=5$.", "5")),
    (r"It is $\boxed{\frac{1}{2}}$ in all.", (r"It is $\frac{1}{2}$ in all.", r"\frac{1}{2}")),  # nested braces
    (r"$\fbox{7}$", ("$7$", "7")),
    (r"$\boxed{1}$ or $\boxed{2}$", None),  # two boxed answers: skipped
    ("no boxed answer", None),
    (r"$\boxed{\frac{1}{2}$", None),  # unbalanced
    (r"$\boxed{ }$", None),  # empty
])
def test_unbox(importer, solution, want):
    assert importer.unbox(solution) == want


def test_math_chain(importer):
    row = {"problem": " What is $2+3$? ", "level": "Level 1", "type": "Prealgebra",
           "solution": r"We add: $2+3=\boxed{5}$."}
    assert importer.math_chain(row, "math-test-4") == {
        "id": "math-test-4", "question": "What is $2+3$?", "reasoning": "We add: $2+3=5$.", "answer": "5",
        "level": "Level 1", "type": "Prealgebra"}
    with pytest.raises(importer.SkipRow, match="drawing"):
        importer.math_chain({**row, "solution": "[asy]draw((0,0));[/asy] $\\boxed{5}$"}, "math-test-5")
    with pytest.raises(importer.SkipRow, match="boxed"):
        importer.math_chain({**row, "solution": "no answer"}, "math-test-6")


@pytest.mark.parametrize("domain,files", [("aqua", ["aqua/dev.json", "aqua/test.json"]),
                                          ("strategyqa", ["strategyqa/train.json", "strategyqa/dev.json"]),
                                          ("math", ["math/test.jsonl"])])
def test_committed_queue_is_the_converter_output(importer, domain, files, tmp_path):
    out = tmp_path / "q.jsonl"
    importer.main([domain, "--in", *[str(DATA / f) for f in files], "--out", str(out),
                   "--min-tokens", "20", "--max-tokens", "64", "--seed", "0"])
    assert out.read_text() == (DATA / "chains" / f"{domain}-20-64.jsonl").read_text()
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(set(ids)) == len(ids) and all(i.startswith(domain + "-") for i in ids)


@pytest.mark.parametrize("lines,msg", [
    ([{"problem": "p", "level": "Level 1", "type": "Algebra"}], "m.jsonl:2: field 'solution': missing"),
    ([{"problem": "p", "level": "Level 1", "type": "Algebra", "solution": None}],
     "m.jsonl:2: field 'solution': expected str, got NoneType"),
    (["not json"], "m.jsonl:2: invalid JSON"),
    ([[1, 2]], "m.jsonl:2: expected a JSON object"),
])
def test_malformed_rows_name_file_line_and_field(importer, tmp_path, capsys, lines, msg):
    good = {"problem": "What is $1+1$?", "level": "Level 1", "type": "Algebra", "solution": r"$1+1=\boxed{2}$."}
    src = tmp_path / "m.jsonl"
    src.write_text(json.dumps(good) + "\n" + "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    out = tmp_path / "q.jsonl"
    assert importer.main(["math", "--in", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err and not out.exists()


def test_skipped_rows_are_counted_by_reason_and_ids_follow_lines(importer, tmp_path, capsys):
    rows = [{"problem": "A?", "level": "Level 1", "type": "Algebra", "solution": r"So $\boxed{2}$."},
            {"problem": "B? [asy]draw((0,0));[/asy]", "level": "Level 1", "type": "Geometry", "solution": r"$\boxed{3}$"},
            {"problem": "C?", "level": "Level 2", "type": "Algebra", "solution": "no boxed answer"}]
    src = tmp_path / "test.jsonl"
    src.write_text(json.dumps(rows[0]) + "\n\n" + "".join(json.dumps(r) + "\n" for r in rows[1:]))  # a blank line 2
    out = tmp_path / "q.jsonl"
    assert importer.main(["math", "--in", str(src), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wrote 1 of 1 chains" in text and "3 rows read" in text
    assert "1 with an Asymptote drawing" in text and "1 without exactly one boxed answer" in text
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["math-test-0"]


def test_min_above_max_is_refused(importer, tmp_path):
    with pytest.raises(SystemExit) as e:
        importer.main(["math", "--in", str(DATA / "math" / "test.jsonl"), "--out", str(tmp_path / "q.jsonl"),
                       "--min-tokens", "64", "--max-tokens", "20"])
    assert e.value.code == 2
