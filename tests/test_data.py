"""The committed ranked data set validates: schema, permutations, unique ids, one LM, n in range."""
from __future__ import annotations

from pathlib import Path

import pytest

from predictor.chains import ChainFormatError
from predictor.cli import main
from predictor.ranked import read_ranked, validate_ranked

DATA = Path(__file__).resolve().parents[1] / "data" / "ranked"
FILES = sorted(DATA.glob("*.jsonl"))


def test_ranked_files_exist():
    assert FILES, "no ranked data committed under data/ranked/"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
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
