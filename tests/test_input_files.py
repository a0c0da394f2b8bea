"""Kind 5, input files: BOM, "\\n"-only lines, invalid UTF-8, clean JSON errors, no readable line,
extra fields passed through, id types, content hashes on resume."""
from __future__ import annotations

import json

import pytest

from predictor.chains import ChainFormatError, chain_hash, read_chains
from predictor.cli import main

GOOD = [{"id": "a", "question": "Tom has 3 apples. How many?", "reasoning": "He has 3 apples.", "answer": "3"},
        {"id": "b", "question": "What is 2 + 2?", "reasoning": "2 + 2 = 4.", "answer": "4"}]


def write_bytes(path, lines: list[bytes], end: bytes = b"\n") -> str:
    path.write_bytes(end.join(lines) + end)
    return str(path)


def enc(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def read(path) -> list[dict]:
    return [json.loads(x) for x in open(path, encoding="utf-8").read().splitlines()]


def prune_argv(inp, out, model_dir, *extra):
    return ["prune", "--in", str(inp), "--out", str(out), "--keep", "0.5", "--scorer", "position",
            "--model", model_dir, *extra]


def test_bom_and_crlf_are_accepted(tmp_path):
    p = write_bytes(tmp_path / "bom.jsonl", [b"\xef\xbb\xbf" + enc(GOOD[0]), enc(GOOD[1])], end=b"\r\n")
    assert [c.id for c in read_chains(p)] == ["a", "b"]


def test_raw_cr_inside_a_line_is_one_bad_line(tmp_path):
    bad = enc(GOOD[1]).replace(b"2 + 2 = 4.", b"2 + 2\r= 4.")  # a raw CR inside a JSON string
    p = write_bytes(tmp_path / "cr.jsonl", [enc(GOOD[0]), bad, enc({k: v for k, v in GOOD[0].items() if k != "id"})])
    with pytest.raises(ChainFormatError) as e:
        read_chains(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:2: invalid JSON: Invalid control character at column ") and " at at " not in msg


def test_streaming_counts_bad_lines_with_true_line_numbers(tmp_path, model_dir, capsys):
    bad_cr = enc(GOOD[1]).replace(b"2 + 2 = 4.", b"2 + 2\r= 4.")
    bad_utf8 = enc({"id": "u", "question": "q", "reasoning": "caf\u00e9", "answer": "1"}).replace(b"\xc3\xa9", b"\xe9")
    no_id = {k: v for k, v in GOOD[0].items() if k != "id"}
    p = write_bytes(tmp_path / "in.jsonl",
                    [enc(GOOD[0]), bad_cr, bad_utf8, b'{"id": "x", "question": "q",', enc(no_id)])
    out = tmp_path / "out.jsonl"
    assert main(prune_argv(p, out, model_dir)) == 0
    assert [r["id"] for r in read(out)] == ["a", "in-5"]  # line 5 keeps its number: CR split nothing
    err = capsys.readouterr().err
    assert f"{p}:2: invalid JSON: Invalid control character at column" in err
    assert "skipped 1 chain(s): not valid UTF-8" in err and f"{p}:3: not valid UTF-8" in err
    assert f"{p}:4: invalid JSON: Expecting property name enclosed in double quotes at column" in err
    assert " at at " not in err


def test_invalid_utf8_is_an_error_in_label_and_check_data(tmp_path, model_dir, capsys):
    p = write_bytes(tmp_path / "bad.jsonl",
                    [enc(GOOD[0]), b'{"id": "u", "question": "q\xff", "reasoning": "r", "answer": "1"}'])
    with pytest.raises(ChainFormatError, match=rf"^{p}:2: not valid UTF-8"):
        read_chains(p)
    assert main(["label", "--in", p, "--out", str(tmp_path / "r.jsonl"), "--model", model_dir]) == 2
    assert f"{p}:2: not valid UTF-8" in capsys.readouterr().err
    ranked = write_bytes(tmp_path / "ranked.jsonl", [b'{"id": "\xff"}'])  # fails before any schema check
    assert main(["check-data", ranked]) == 2
    assert f"{ranked}:1: not valid UTF-8" in capsys.readouterr().err


def test_no_readable_line_exits_non_zero(tmp_path, model_dir, capsys):
    p = write_bytes(tmp_path / "junk.jsonl", [b"{not json", b"\xff\xfe"])
    out = tmp_path / "out.jsonl"
    assert main(prune_argv(p, out, model_dir)) == 2
    assert "no chain could be read (2 line(s) skipped)" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "out.jsonl.partial").exists()


def test_extra_fields_pass_through_to_predict_and_prune(tmp_path, model_dir):
    rows = [{**GOOD[0], "source": "gsm8k", "meta": {"split": "test"}}, {**GOOD[1], "kept": "user value"}]
    p = write_bytes(tmp_path / "x.jsonl", [enc(r) for r in rows])
    assert main(prune_argv(p, tmp_path / "p.jsonl", model_dir)) == 0
    a, b = read(tmp_path / "p.jsonl")
    assert a["source"] == "gsm8k" and a["meta"] == {"split": "test"}
    assert isinstance(b["kept"], list)  # a field the tool writes takes precedence
    assert main(["predict", "--in", p, "--out", str(tmp_path / "r.jsonl"), "--scorer", "position",
                 "--model", model_dir]) == 0
    assert read(tmp_path / "r.jsonl")[0]["source"] == "gsm8k"


def test_ids_must_be_strings_or_integers(tmp_path, model_dir, capsys):
    p = write_bytes(tmp_path / "ids.jsonl", [enc({**GOOD[0], "id": True}), enc({**GOOD[1], "id": 7}),
                                             enc({**GOOD[0], "id": 1.5})])
    with pytest.raises(ChainFormatError, match=rf"{p}:1: field 'id' must be a string or an integer, got true"):
        read_chains(p)
    assert main(prune_argv(p, tmp_path / "o.jsonl", model_dir)) == 0
    assert [r["id"] for r in read(tmp_path / "o.jsonl")] == [7]  # an integer id stays an integer
    err = capsys.readouterr().err
    assert "got true" in err and "got 1.5" in err


def test_resume_refuses_records_whose_chain_changed(tmp_path, model_dir, capsys):
    no_ids = [{k: v for k, v in c.items() if k != "id"} for c in GOOD]  # positional default ids
    p = tmp_path / "in.jsonl"
    write_bytes(p, [enc(c) for c in no_ids])
    out = tmp_path / "out.jsonl"
    assert main(prune_argv(p, out, model_dir)) == 0
    recs = read(out)
    assert [r["chain_hash"] for r in recs] == [chain_hash(c["question"], c["reasoning"], c["answer"]) for c in no_ids]
    before = out.read_text()
    assert main(prune_argv(p, out, model_dir)) == 0 and out.read_text() == before  # unchanged input: resumed
    capsys.readouterr()
    write_bytes(p, [enc(no_ids[1]), enc(no_ids[0])])  # edited input: line 1 now holds another chain
    assert main(prune_argv(p, out, model_dir)) == 2
    err = capsys.readouterr().err
    assert f"{out}:1: the record of 'in-1' was written for other content" in err and "input chain changed" in err
    assert out.read_text() == before


def test_lone_surrogates_are_bad_lines_not_crashes(tmp_path, model_dir, capsys):
    """QA: JSON "\\ud83d" without its pair (a string cut inside an emoji) is a counted bad line naming
    file:line and field, in any field (also extra ones, which would not encode as UTF-8 output);
    it used to crash the whole run inside the tokenizer."""
    cut = enc(GOOD[1]).replace(b"2 + 2 = 4.", b"2 + 2 = 4 \\ud83d.")
    extra = enc({**GOOD[0], "id": "e", "meta": {"note": "\\udc00"}}).replace(b"\\\\udc00", b"\\udc00")
    p = write_bytes(tmp_path / "sur.jsonl", [enc(GOOD[0]), cut, extra])
    with pytest.raises(ChainFormatError, match=rf"^{p}:2: field 'reasoning' is not valid Unicode: lone surrogate "
                                               r"U\+D83D at character 11$"):
        read_chains(p)
    out = tmp_path / "out.jsonl"
    assert main(prune_argv(p, out, model_dir)) == 0
    assert [r["id"] for r in read(out)] == ["a"]
    err = capsys.readouterr().err
    assert f"{p}:2: field 'reasoning' is not valid Unicode" in err and f"{p}:3: field 'meta' is not valid Unicode" in err


def test_utf16_file_is_named_as_such(tmp_path, model_dir, capsys):
    """QA: a UTF-16 file (Windows "Unicode") is one clear error, not a bad-JSON skip of every line."""
    p = tmp_path / "u16.jsonl"
    p.write_bytes(("\n".join(json.dumps(c) for c in GOOD) + "\n").encode("utf-16"))
    with pytest.raises(ChainFormatError, match=rf"^{p}: UTF-16 text \(byte-order mark FF FE\)"):
        read_chains(p)
    assert main(prune_argv(p, tmp_path / "o.jsonl", model_dir)) == 2
    assert f"{p}: UTF-16 text" in capsys.readouterr().err and not (tmp_path / "o.jsonl").exists()


def test_a_directory_as_input_is_named_as_such(tmp_path):
    from predictor.chains import iter_jsonl_lines

    with pytest.raises(ValueError, match=rf"^{tmp_path}: is a directory, not a JSONL file$"):
        list(iter_jsonl_lines(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such file"):
        list(iter_jsonl_lines(tmp_path / "missing.jsonl"))


def test_unscorable_chains_are_reported_with_file_and_line(tmp_path, model_dir, capsys):
    empty = {"id": "e", "question": "q", "reasoning": "   ", "answer": "1"}
    p = write_bytes(tmp_path / "in.jsonl", [enc(GOOD[0]), enc(empty), enc(GOOD[1])])
    assert main(prune_argv(p, tmp_path / "out.jsonl", model_dir)) == 0
    assert f"{p}:2: chain 'e': reasoning is empty" in capsys.readouterr().err
