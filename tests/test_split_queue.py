"""data/split_queue.py: one split of a chain queue, shortest reasoning first, minus excluded ids."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from predictor.splits import split_ids

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))


def test_split_queue_keeps_one_split_sorted_by_tokens_without_excluded(tmp_path, tokenizer):
    from split_queue import main

    chains = [{"id": f"q{i}", "question": f"Q{i}?", "reasoning": " ".join(["step"] * ((7 * i) % 13 + 1)),
               "answer": str(i)} for i in range(40)]
    src, out, done = tmp_path / "chains.jsonl", tmp_path / "queue.jsonl", tmp_path / "done.jsonl"
    src.write_text("".join(json.dumps(c) + "\n" for c in chains))
    test_ids = split_ids([c["id"] for c in chains])["test"]
    done.write_text(json.dumps({"id": test_ids[0]}) + "\n")
    assert main(["--in", str(src), "--split", "test", "--out", str(out), "--exclude", str(done)]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(c["id"] for c in got) == sorted(test_ids[1:])
    lens = [len(tokenizer(c["reasoning"], add_special_tokens=False)["input_ids"]) for c in got]
    assert lens == sorted(lens) and len(set(lens)) > 1
