"""Chains JSONL reader and the GSM8K importer."""
from __future__ import annotations

import json

import pytest

from predictor.chains import ChainFormatError, read_chains, read_gsm8k


def test_read_chains_defaults_and_errors(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"question": "q", "reasoning": "r", "answer": "1", "extra": 5}) + "\n\n"
                 + json.dumps({"id": 7, "question": "q", "reasoning": "r", "answer": "2"}) + "\n")
    chains = read_chains(p)
    assert [c.id for c in chains] == ["c-1", "7"] and chains[0].extra == {"extra": 5}
    p.write_text(json.dumps({"id": "a", "question": "q", "reasoning": 3, "answer": "1"}) + "\n")
    with pytest.raises(ChainFormatError, match=r"c.jsonl:1: field 'reasoning' must be a string"):
        read_chains(p)
    p.write_text(json.dumps({"id": "a", "question": "q", "reasoning": "r", "answer": "1"}) + "\n" +
                 json.dumps({"id": "a", "question": "q", "reasoning": "r", "answer": "1"}) + "\n")
    with pytest.raises(ChainFormatError, match=r"c.jsonl:2: field 'id': duplicate id 'a' \(first on line 1\)"):
        read_chains(p)
    p.write_text("[1, 2]\n")
    with pytest.raises(ChainFormatError, match="c.jsonl:1: expected a JSON object"):
        read_chains(p)
    with pytest.raises(FileNotFoundError):
        read_chains(tmp_path / "missing.jsonl")


def test_gsm8k_cleaning(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_text(json.dumps({"question": "How many? ", "answer": "Half is 48/2 = <<48/2=24>>24.\n#### 24"}) + "\n")
    (c,) = read_gsm8k(p)
    assert (c.id, c.question, c.reasoning, c.answer) == ("gsm8k-train-0", "How many?", "Half is 48/2 = 24.", "24")
    p.write_text(json.dumps({"question": "q", "answer": "no separator"}) + "\n")
    with pytest.raises(ChainFormatError, match="####"):
        read_gsm8k(p)
