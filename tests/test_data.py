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


def test_ranked_files_exist():
    assert FILES, "no ranked data committed under data/ranked/"


@pytest.mark.parametrize("path", FILES + VARIANT, ids=lambda p: f"{p.parent.name}/{p.name}")
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
    for path in FILES:
        assert {r["answer_ids"][-1] for r in read_ranked(path)} == {tokenizer.eos_token_id}
    for path in VARIANT:
        assert {r["answer_ids"][-1] for r in read_ranked(path)} == {tokenizer.convert_tokens_to_ids("<|im_start|>")}
