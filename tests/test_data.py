"""The committed ranked data set validates: schema, permutations, unique ids, one LM, n in range."""
from __future__ import annotations

from pathlib import Path

import pytest

from predictor.chains import ChainFormatError
from predictor.cli import main
from predictor.ranked import read_ranked, validate_ranked

DATA = Path(__file__).resolve().parents[1] / "data" / "ranked"
FILES = sorted(DATA.glob("*.jsonl"))
VARIANT = sorted((DATA / "variant-eos-im_start").glob("*.jsonl"))
GEMMA = sorted((DATA / "gemma3-270m").glob("*.jsonl"))
SAMPLED = sorted((DATA / "smollm2-sampled").glob("*.jsonl"))


def test_ranked_files_exist():
    assert FILES, "no ranked data committed under data/ranked/"


@pytest.mark.parametrize("path", FILES + VARIANT + GEMMA + SAMPLED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_ranked_file_validates(path):
    assert main(["check-data", str(path)]) == 0
    recs = read_ranked(path)
    assert len({r["lm"] for r in recs}) == 1
    for r in recs:
        assert 20 <= len(r["reasoning_ids"]) <= 64
        assert r["stride"] == 1


def test_validator_rejects_broken_records():
    rec = read_ranked(FILES[0])[0]
    bad = dict(rec, ranks=list(rec["ranks"][:-1]) + [rec["ranks"][0]])
    with pytest.raises(ChainFormatError, match="x.jsonl:3: field 'ranks'"):
        validate_ranked(bad, "x.jsonl:3")
    with pytest.raises(ChainFormatError, match="field 'trajectory' has"):
        validate_ranked(dict(rec, trajectory=rec["trajectory"][:-1]), "x.jsonl:3")
    with pytest.raises(ChainFormatError, match="missing field 'order'"):
        validate_ranked({k: v for k, v in rec.items() if k != "order"}, "x.jsonl:3")


def test_main_data_uses_the_eos_of_the_default_layout_and_the_variant_does_not(tokenizer):
    """The main files follow the design card's layout (answer ends with the tokenizer's eos, <|im_end|>);
    the variant files were labeled with <|im_start|> as eos (transformers 5.17's GGUF conversion)."""
    assert VARIANT
    for path in FILES + SAMPLED:
        assert {r["answer_ids"][-1] for r in read_ranked(path)} == {tokenizer.eos_token_id}
    for path in VARIANT:
        assert {r["answer_ids"][-1] for r in read_ranked(path)} == {tokenizer.convert_tokens_to_ids("<|im_start|>")}


def test_gemma_data_uses_the_base_lm_layout():
    """Gemma records: BOS (id 2) opens the prompt, the answer ends with Gemma's eos (id 1), and the
    prompt format is stored; without the weights package this needs no tokenizer."""
    for path in GEMMA:
        for r in read_ranked(path):
            assert r["prompt_ids"][0] == 2 and r["prompt_ids"].count(2) == 1
            assert r["answer_ids"][-1] == 1 and r["prompt_format"] == "plain+bos"



@pytest.fixture(scope="module")
def build_card():
    """data/build_card.py, loaded as a module (it is a script beside the data, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_card", DATA.parent / "build_card.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_card_matches_the_committed_files(build_card):
    """data/README.md is what data/build_card.py computes from today's files (counts, coverage, agreement)."""
    assert (DATA.parent / "README.md").read_text() == build_card.card_text(), \
        "data/README.md is stale: run `python data/build_card.py`"


def test_card_coverage_names_the_complete_prefix_and_the_ragged_tail(build_card):
    position = {f"c{k}": k for k in range(10)}
    assert build_card._coverage([{"id": f"c{k}"} for k in (0, 1, 2)], position) == \
        "all of the first 3 chains of the queue"
    assert build_card._coverage([{"id": f"c{k}"} for k in (0, 1, 3, 5)], position) == \
        "all of the first 2 chains of the queue, plus 2 of positions 4-6 (shards run unevenly)"
