"""Records in other tools' formats (issue 29, kind 3): OpenAI-style messages, ShareGPT conversations,
JSON array files, field mappings; each record written back in its own format with only the reasoning
replaced, so an unchanged reasoning gives the input record back."""
from __future__ import annotations

import json

import pytest

from predictor.chain_formats import (ChainRecord, detect_format, iter_chains, iter_records, parse_fields, read_record,
                                     split_think, write_record)
from predictor.chains import ChainFormatError
from predictor.rank_predictor import RankPredictor, prune

R1 = {"id": 7, "messages": [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Tom has 3 apples and buys 4 more. How many?"},
    {"role": "assistant", "content": "<think>\nTom has 3 apples.\n  He buys 4, so 3 + 4 = 7.\n</think>\n\nTom has 7 apples."}],
    "source": {"dataset": "toy", "split": "train"}}
REASONING = "Tom has 3 apples.\n  He buys 4, so 3 + 4 = 7."


@pytest.fixture(scope="module")
def rp(tiny_lm):
    return RankPredictor.load("surprisal", lm=tiny_lm)


def test_messages_record_reads_user_think_and_answer():
    chain, layout = read_record(R1, "f.jsonl:1")
    assert (chain.question, chain.reasoning, chain.answer, chain.id) == (
        "Tom has 3 apples and buys 4 more. How many?", REASONING, "Tom has 7 apples.", "7")
    assert layout.format == "messages" and layout.path == ("messages", 2, "content")
    assert chain.extra == {"source": {"dataset": "toy", "split": "train"}}
    assert write_record(R1, layout, chain.reasoning) == R1  # unchanged reasoning: the record as read
    out = write_record(R1, layout, "3 + 4 = 7.")
    assert out["messages"][2]["content"] == "<think>\n3 + 4 = 7.\n</think>\n\nTom has 7 apples."
    assert {**out, "messages": out["messages"][:2]} == {**R1, "messages": R1["messages"][:2]}
    assert R1["messages"][2]["content"].startswith("<think>\nTom")  # the input is not modified


def test_messages_in_and_out_through_prune(rp):
    """Kind 3: a messages record pruned and written back keeps its format; read again, its question and
    answer are the input's and its reasoning the pruned text; at keep 1.0 the record comes back as is."""
    chain, layout = read_record(R1, "f.jsonl:1")
    for ratio in (0.3, 0.6):
        res = prune(chain, ratio, predictor=rp, protect="numbers")
        out = write_record(R1, layout, res.text)
        again, _ = read_record(json.loads(json.dumps(out)), "out.jsonl:1")
        assert (again.question, again.answer, again.id) == (chain.question, chain.answer, chain.id)
        assert again.reasoning == res.text.strip() and res.text.strip()
    assert write_record(R1, layout, prune(chain, 1.0, predictor=rp).text) == R1


@pytest.mark.parametrize("record, reasoning, answer, path", [
    # the DeepSeek API's separate reasoning field
    ({"messages": [{"role": "user", "content": "Q?"},
                   {"role": "assistant", "content": "A.", "reasoning_content": "  think hard \n"}]},
     "think hard", "A.", ("messages", 1, "reasoning_content")),
    # ShareGPT (LlamaFactory): conversations / from / value
    ({"conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "<think>R.</think>A."}]},
     "R.", "A.", ("conversations", 1, "value")),
    # the chat template opened <think>: only the closing tag is in the output
    ({"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "R.\n</think>\n\nA."}]},
     "R.", "A.", ("messages", 1, "content")),
    # content as a list of parts
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "Q?"}]},
                   {"role": "assistant", "content": [{"type": "text", "text": "<think>R.</think>"},
                                                     {"type": "text", "text": "A."}]}]},
     "R.", "A.", ("messages", 1, "content", 0, "text")),
])
def test_messages_variants(record, reasoning, answer, path):
    chain, layout = read_record(record, "f:1", "messages")
    assert (chain.question, chain.reasoning, chain.answer, layout.path) == ("Q?", reasoning, answer, path)
    assert write_record(record, layout, chain.reasoning) == record
    assert read_record(write_record(record, layout, "S."), "f:1")[0].reasoning == "S."


def test_several_user_turns_make_the_question():
    rec = {"messages": [{"role": "user", "content": "Part one."}, {"role": "assistant", "content": "Go on."},
                        {"role": "user", "content": "Part two?"}, {"role": "assistant", "content": "<think>R</think>A"}]}
    chain, layout = read_record(rec, "f:1")
    assert chain.question == "Part one.\n\nPart two?" and layout.path == ("messages", 3, "content")


@pytest.mark.parametrize("record, fmt, message", [
    ({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "just an answer"}]}, "auto",
     r"^f.jsonl:3: field 'messages\[1\].content' \(the last assistant turn\) has no <think>...</think> part"),
    ({"messages": [{"role": "user", "content": "Q"}]}, "auto", r"^f.jsonl:3: field 'messages' has no assistant turn"),
    ({"messages": [{"role": "assistant", "content": "<think>R</think>A"}]}, "auto",
     r"^f.jsonl:3: field 'messages' has no user turn"),
    ({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "<think> </think>A"}]}, "auto",
     r"^f.jsonl:3: field 'messages\[1\].content': the reasoning is empty"),
    ({"prompt": "Q", "cot": "R", "output": "A"}, "auto",
     r"^f.jsonl:3: cannot tell the record's format \(fields 'prompt', 'cot', 'output'\).*--field question="),
    (R1, "chain", r"^f.jsonl:3: missing field 'question' \(this is a messages record: --format messages"),
    ({"question": "Q", "reasoning": "R", "answer": "A"}, "messages", r"this is a chain record: --format chain"),
    ({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": 5}]}, "auto",
     r"^f.jsonl:3: field 'messages\[1\].content' must be a string or a list of parts, got int"),
    ({"messages": [{"role": "user", "content": "Q \ud83d"}, {"role": "assistant", "content": "<think>R</think>A"}]},
     "auto", r"^f.jsonl:3: field 'messages' is not valid Unicode: lone surrogate U\+D83D"),
])
def test_bad_records_name_file_line_and_field(record, fmt, message):
    with pytest.raises(ChainFormatError, match=message):
        read_record(record, "f.jsonl:3", fmt)


def test_field_mapping_tokenskip_and_llamafactory_layouts():
    """Kind 3: TokenSkip's prediction records (question in messages[0], CoT in model_output, answer in
    prediction) and LLaMA-Factory's alpaca records (reasoning and answer in one output field)."""
    tokenskip = {"messages": [{"role": "user", "content": "Q?"}], "model_output": "Step 1. 3 + 4 = 7.",
                 "prediction": "7", "accuracy": True}
    chain, layout = read_record(tokenskip, "t:1", fields="question=messages.0.content,reasoning=model_output,"
                                                         "answer=prediction")
    assert (chain.question, chain.reasoning, chain.answer) == ("Q?", "Step 1. 3 + 4 = 7.", "7")
    assert chain.extra == {"accuracy": True}
    assert write_record(tokenskip, layout, "3 + 4 = 7.") == {**tokenskip, "model_output": "3 + 4 = 7."}
    alpaca = {"instruction": "Reason step by step.", "input": "Q?", "output": "<think>\nR 7.\n</think>\nThe answer is 7."}
    chain, layout = read_record(alpaca, "a:1", fields="question=input,reasoning=output,answer=output")
    assert (chain.question, chain.reasoning, chain.answer) == ("Q?", "R 7.", "The answer is 7.")
    assert write_record(alpaca, layout, "7.") == {**alpaca, "output": "<think>\n7.\n</think>\nThe answer is 7."}
    with pytest.raises(ChainFormatError, match=r"^a:1: missing field 'cot' \(--field reasoning=cot\)"):
        read_record(alpaca, "a:1", fields="question=input,reasoning=cot,answer=output")
    with pytest.raises(ChainFormatError, match=r"^a:1: field 'output' holds reasoning and answer but no <think>"):
        read_record({**alpaca, "output": "no tags"}, "a:1", fields="question=input,reasoning=output,answer=output")
    idmap = read_record({"uid": 12, "q": "Q", "r": "R", "a": "A"}, "x:1", fields="id=uid,question=q,reasoning=r,answer=a")
    assert idmap[0].id == "12"


@pytest.mark.parametrize("spec, message", [
    ("question=prompt,cot", r"^--field: 'cot' is not TARGET=FIELD"),
    ("query=prompt", r"^--field: unknown target 'query'; targets are question, reasoning, answer, id"),
    ("question=a,question=b", r"^--field: 'question' is mapped twice"),
    ("question=", r"^--field: question= needs a field name"),
    (",", r"^--field: empty mapping"),
])
def test_bad_field_mappings(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_fields(spec)


def test_parse_fields_paths():
    assert parse_fields("question=messages.0.content,reasoning=a[1].b, answer = out") == {
        "question": ("messages", 0, "content"), "reasoning": ("a", 1, "b"), "answer": ("out",)}


def test_detect_format_and_split_think():
    assert detect_format({"question": "", "reasoning": "", "answer": ""}) == "chain"
    assert detect_format(R1) == "messages" and detect_format({"prompt": 1}) is None and detect_format([1]) is None
    text = "<think>\n R \n</think>\nA"
    s, e, a = split_think(text)
    assert text[s:e] == "R" and text[a:] == "\nA" and split_think("no tags") is None


def test_json_array_file_is_read_as_records(tmp_path):
    """Kind 3: a file holding one JSON array is records, each named by line and item, with default ids
    <stem>-<item> (unique also when the array is on one line); a bad record is an error naming its line,
    item and field; invalid JSON names line and column."""
    recs = [{"question": "Q1", "reasoning": "R1", "answer": "A1"}, {"reasoning": "R2", "answer": "A2"}, R1]
    f = tmp_path / "data.json"
    f.write_text(json.dumps(recs, indent=2), encoding="utf-8")
    got = list(iter_chains(f))
    assert isinstance(got[0], ChainRecord) and got[0].chain.id == "data-1" and got[0].at.line == 2
    assert isinstance(got[1], ChainFormatError)
    assert str(got[1]) == f"{f}:7 (item 2): missing field 'question'"
    assert got[2].chain.id == "7" and got[2].written(got[2].chain.reasoning) == R1
    one = tmp_path / "one.json"
    one.write_text("\ufeff " + json.dumps([recs[0], recs[0]]), encoding="utf-8")
    assert [c.chain.id for c in iter_chains(one)] == ["one-1", "one-2"]
    empty = tmp_path / "empty.json"
    empty.write_text("[ ]\n")
    assert list(iter_records(empty)) == []
    bad = tmp_path / "bad.json"
    bad.write_text('[\n {"question": "Q", "reasoning": "R", "answer": "A"},\n {"question": "Q" "x"}\n]')
    with pytest.raises(ChainFormatError, match=rf"^{bad}:3: invalid JSON array: Expecting ',' delimiter at column 19"):
        list(iter_records(bad))
    cut = tmp_path / "cut.json"
    cut.write_text('[{"question": "Q", "reasoning": "R", "answer": "A"},')
    with pytest.raises(ChainFormatError, match=rf"^{cut}:1: invalid JSON array: Expecting value at column 53"):
        list(iter_records(cut))


def test_jsonl_files_keep_their_line_rules(tmp_path):
    """JSON Lines are read by chains.iter_jsonl_lines: bad lines come back as errors naming file:line,
    records of several formats can share a file, default ids are <stem>-<line>."""
    f = tmp_path / "mixed.jsonl"
    f.write_text(json.dumps(R1) + "\n{bad json\n" + json.dumps({"question": "Q", "reasoning": "R", "answer": "A"})
                 + "\n", encoding="utf-8")
    got = list(iter_chains(f))
    assert got[0].chain.reasoning == REASONING and got[0].layout.format == "messages"
    assert isinstance(got[1], ChainFormatError) and str(got[1]).startswith(f"{f}:2: invalid JSON")
    assert got[2].chain.id == "mixed-3" and got[2].written("S") == {"question": "Q", "reasoning": "S", "answer": "A"}
    mapped = list(iter_chains(f, fields="question=q,reasoning=r,answer=a"))
    assert all(isinstance(e, ChainFormatError) for e in mapped)
    assert str(mapped[0]) == f"{f}:1: missing field 'r' (--field reasoning=r)"


def test_unclosed_think_is_called_a_truncated_trace():
    """A messages record cut inside its reasoning (an R1-style trace that never closed <think>) is named as
    such, not as a record without a <think> part."""
    rec = {"messages": [{"role": "user", "content": "Q?"},
                        {"role": "assistant", "content": "<think>2 plus 2 is 4, so the answer is 4."}]}
    with pytest.raises(ChainFormatError, match=r"f.jsonl:3: .*<think> is not closed \(a truncated trace\?\)"):
        read_record(rec, "f.jsonl:3")
    rec["messages"][1]["content"] = "The answer is 4."
    with pytest.raises(ChainFormatError, match="has no <think>...</think> part"):
        read_record(rec, "f.jsonl:3")
