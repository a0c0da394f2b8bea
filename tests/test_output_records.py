"""Existing output files (resume, merge): the resumable writer, the before-load resume check of
predict/prune and the Ray engine's merge read them with one reader (`jsonl_io.OutputRecords`), so
they accept, repair and refuse the same files with the same file:line messages."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from predictor.engines.resume_check import done_ids_matching
from predictor.engines.parts import iter_output_records
from predictor.jsonl_io import OutputRecords, ResumableJsonlWriter


def line(rid: str, **extra) -> bytes:
    return (json.dumps({"id": rid, "t": "x", **extra}, ensure_ascii=False) + "\n").encode("utf-8")


def read_three(path: Path, tmp_path: Path) -> dict[str, list[str] | str]:
    """What each of the three readers makes of `path` (a copy each, since the writer repairs its file):
    the ids it reads, or its error message."""
    out: dict[str, list[str] | str] = {}
    data = path.read_bytes()

    def attempt(name, fn):
        p = tmp_path / name / path.name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        try:
            out[name] = fn(p)
        except ValueError as e:
            out[name] = str(e).replace(str(p), "OUT")

    def writer(p):
        with ResumableJsonlWriter(p) as w:
            return sorted(w.done)

    attempt("writer", writer)
    attempt("resume_check", lambda p: sorted(done_ids_matching(p, p.with_name(p.name + ".partial"), {})[0]))
    attempt("ray_merge", lambda p: sorted(str(r["id"]) for r, _ in iter_output_records(p, p.with_name("parts"))))
    return out


BAD_LINES = {
    "invalid JSON": (b'{"id": "b", \n', "OUT:2: not a complete record of this tool's output (invalid JSON: "
                     "Expecting property name enclosed in double quotes at column 13); fix or remove the line, "
                     "or use another output path"),
    "raw CR inside a line": (line("b", t="2 + 2 = 4.").replace(b"2 = 4", b"2\r= 4"),  # raw, not "\\r"
                             "OUT:2: not a complete record of this tool's output (invalid JSON: Invalid control "
                             "character at column 24)"),
    "invalid UTF-8": (line("b", t="caf\u00e9").replace(b"\xc3\xa9", b"\xe9"),
                      "OUT:2: not a complete record of this tool's output (not valid UTF-8: byte 22 of the line)"),
    "not an object": (b'["b"]\n', "OUT:2: not a complete record of this tool's output (a JSON array, not an object)"),
    "no id": (b'{"t": "x"}\n', "OUT:2: not a complete record of this tool's output (no field 'id')"),
}


@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_a_bad_line_before_the_last_is_the_same_error_for_all_three_readers(tmp_path, kind):
    bad, message = BAD_LINES[kind]
    p = tmp_path / "o.jsonl"
    p.write_bytes(line("a") + bad + line("c"))
    got = read_three(p, tmp_path)
    assert got["writer"] == got["resume_check"] == got["ray_merge"]
    assert isinstance(got["writer"], str) and got["writer"].startswith(message)
    assert (tmp_path / "writer" / "o.jsonl").read_bytes() == p.read_bytes()  # nothing dropped


@pytest.mark.parametrize("cut", [b'{"id": "c", "t": "x', line("c", t="\u4e2d")[:-3]], ids=["mid-json", "mid-character"])
def test_a_cut_last_line_is_skipped_by_all_three_and_cut_off_by_the_writer(tmp_path, cut):
    p = tmp_path / "o.jsonl"
    p.write_bytes(line("a") + b"\n" + line("b") + cut)
    got = read_three(p, tmp_path)
    assert got == {"writer": ["a", "b"], "resume_check": ["a", "b"], "ray_merge": ["a", "b"]}
    assert (tmp_path / "writer" / "o.jsonl").read_bytes() == line("a") + b"\n" + line("b")
    records = OutputRecords(p)
    assert [n for n, _ in records] == [1, 3] and records.cut_at == len(line("a")) + 1 + len(line("b"))
    assert done_ids_matching(p, p.with_name("none"), {})[1] is False  # left for the writer to repair


@pytest.mark.parametrize("last", [b"garbage", b"id,question,reasoning"])
def test_an_unterminated_last_line_that_no_writer_of_ours_began_is_refused_not_cut(tmp_path, last):
    """Only a JSON object cut by a kill is cut off; a last line that is someone else's text (no "{") is an
    error naming the line, and the file keeps it."""
    p = tmp_path / "o.jsonl"
    for before in (b"", line("a")):
        p.write_bytes(before + last)
        with pytest.raises(ValueError, match=rf"^{p}:{1 + bool(before)}: not a complete record"):
            list(OutputRecords(p))
        assert p.read_bytes() == before + last


def test_a_complete_last_record_without_its_newline_is_kept_and_ended(tmp_path):
    p = tmp_path / "o.jsonl"
    p.write_bytes(line("a") + line("b")[:-1])
    got = read_three(p, tmp_path)
    assert got == {"writer": ["a", "b"], "resume_check": ["a", "b"], "ray_merge": ["a", "b"]}
    w = tmp_path / "writer" / "o.jsonl"
    with ResumableJsonlWriter(w) as out:
        out.write({"id": "c", "t": "x"})
    assert w.read_bytes() == line("a") + line("b") + line("c")


def test_lines_split_on_newline_only_with_true_line_numbers(tmp_path):
    """A raw CR splits nothing (the line after a bad one keeps its number); "\\r\\n" endings and a
    byte-order mark are accepted."""
    p = tmp_path / "o.jsonl"
    raw_cr = line("b", t="1 2").replace(b"1 2", b"1\r2")
    p.write_bytes(b"\xef\xbb\xbf" + line("a")[:-1] + b"\r\n" + raw_cr[:-1] + b"\r\n" + line("c"))
    with pytest.raises(ValueError, match=rf"^{p}:2: .*Invalid control character at column 20"):
        list(OutputRecords(p))
    p.write_bytes(b"\xef\xbb\xbf" + line("a")[:-1] + b"\r\n" + line("b")[:-1] + b"\r\n\r\n" + line("c") + b"{x\n")
    with pytest.raises(ValueError, match=rf"^{p}:5: "):
        list(OutputRecords(p))
    p.write_bytes(p.read_bytes()[:-3])
    assert [(n, r["id"]) for n, r in OutputRecords(p)] == [(1, "a"), (2, "b"), (4, "c")]


def test_ray_merge_raw_cr_in_out_or_a_part_is_one_bad_line(tmp_path):
    """`parts.iter_output_records` reads bytes split on b"\\n": a raw CR inside a line of OUT or of a part
    is that one line's error (file:line), and a part, written whole, may not end in a cut line."""
    out, parts = tmp_path / "o.jsonl", tmp_path / "o.jsonl.parts"
    parts.mkdir()
    out.write_bytes(line("a") + line("b"))
    part = parts / "part-1.jsonl"
    part.write_bytes(line("c") + line("d", t="x y").replace(b"x y", b"x\ry") + line("e"))
    with pytest.raises(ValueError, match=rf"^{part}:2: not a complete record .*Invalid control character"):
        list(iter_output_records(out, parts))
    part.write_bytes(line("c") + line("d", t="\u00e9").replace(b"\xc3\xa9", b"\xc3"))
    with pytest.raises(ValueError, match=rf"^{part}:2: .*not valid UTF-8: byte 19 of the line"):
        list(iter_output_records(out, parts))
    part.write_bytes(line("c") + b'{"id": "d", "t')
    with pytest.raises(ValueError, match=rf"^{part}:2: .*invalid JSON: Unterminated string"):
        list(iter_output_records(out, parts))
    part.write_bytes(line("c") + line("d"))
    assert [(r["id"], w) for r, w in iter_output_records(out, parts)] == [
        ("a", f"{out}:1"), ("b", f"{out}:2"), ("c", f"{part}:1"), ("d", f"{part}:2")]


def test_settings_messages_name_the_differing_key_of_a_nested_setting():
    from predictor.engines.parts import merge_records
    from predictor.jsonl_io import check_settings

    have = {"id": "a", "scorer": "s", "settings": {"keep": 0.5, "gap_cost": None, "protect": None}}
    with pytest.raises(ValueError, match=r"^o.jsonl:3: field 'settings.gap_cost' is None but this run uses 2.0;"):
        check_settings("o.jsonl:3", have, {"scorer": "s", "settings": {**have["settings"], "gap_cost": 2.0}})
    with pytest.raises(ValueError, match=r"field 'settings.position_weight' is missing but this run uses 0.5;"):
        check_settings("o.jsonl:3", have, {"settings": {**have["settings"], "position_weight": 0.5}})
    with pytest.raises(ValueError, match=r"field 'scorer' is 's' but this run uses 't';"):
        check_settings("o.jsonl:3", have, {"scorer": "t"})
    other = {**have, "id": "b", "settings": {**have["settings"], "keep": 0.3}}
    with pytest.raises(ValueError, match=r"^p2:1: field 'settings.keep' is 0.3 but p1:1 has 0.5;"):
        merge_records(iter([(have, "p1:1"), (other, "p2:1")]), ("id",), ("scorer", "settings"), {"a": 0, "b": 1},
                      "in", ranked=False)
