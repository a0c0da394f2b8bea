"""benchmarks/domain_crossfit.py: the leave-domain-out scheme never trains on the domain it scores."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import load_script, write_ranked


@pytest.fixture(scope="module")
def crossfit():
    return load_script("benchmarks/domain_crossfit.py")


def test_leave_domain_out_partitions(crossfit):
    ids = ["aqua-1", "math-1", "aqua-2", "sqa-1", "math-2"]
    sets = crossfit.leave_domain_out(ids, lambda c: c.split("-")[0])
    assert list(sets) == ["aqua", "math", "sqa"]
    assert sets["math"] == (["aqua-1", "aqua-2", "sqa-1"], ["math-1", "math-2"])
    for dom, (train, held) in sets.items():
        assert sorted(train + held) == sorted(ids) and not {c.split("-")[0] for c in train} & {dom}


def _chains(prefix: str, k: int, offset: int) -> list[dict]:
    return [{"id": f"{prefix}-{i}", "question": f"Sam has {i + 2} pens and buys {i + offset} more. How many now?",
             "reasoning": f"Sam starts with {i + 2} pens. He buys {i + offset} more, so he has "
                          f"{i + 2} + {i + offset} = {2 * i + 2 + offset} pens.", "answer": str(2 * i + 2 + offset)}
            for i in range(k)]


@pytest.mark.parametrize("domains", [["aqua"], ["aqua", "math"]])
def test_scheme_both_end_to_end(crossfit, tiny_lm, model_dir, tmp_path, domains):
    main = write_ranked(tmp_path / "main.jsonl", _chains("gsm8k", 10, 1), tiny_lm, seed=0)
    files = [str(write_ranked(tmp_path / f"{d}.jsonl", _chains(d, 4, 5 + j), tiny_lm, seed=j + 1))
             for j, d in enumerate(domains)]
    out = tmp_path / "cf.json"
    rc = crossfit.main(["--data", str(main), "--domain-data", ",".join(files), "--model", model_dir,
                        "--cache", str(tmp_path / "cache"), "--states", "0", "--groups", "position,logits",
                        "--regressor", "ridge", "--folds", "2", "--scheme", "both", "--threads", "1",
                        "--no-progress", "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    ref, cross, unseen = (np.array(res[k]) for k in ("main_only", "with_domains", "other_domains_only"))
    assert len(res["ids"]) == 4 * len(domains) and np.isfinite(cross).all() and np.isfinite(unseen).all()
    assert set(res["domains"]) == set(domains)
    if len(domains) == 1:  # no other domain to add: the unseen model is the reference model
        np.testing.assert_allclose(unseen, ref)
    else:  # the other domain's chains changed the fit
        assert not np.allclose(unseen, ref)
    for d in domains:
        assert {"other_domains_only", "unseen_difference", "own_labels_difference"} <= set(res["domains"][d])
    assert "out of fold minus unseen" in res["table"]
