"""The demo's building blocks: which chains count as held out, and its table."""
from __future__ import annotations

import numpy as np

from predictor.demo import format_rows, held_out
from predictor.splits import split_ids


def test_held_out_is_the_test_split_minus_anything_the_predictor_saw():
    records = [{"id": f"c{i}"} for i in range(200)]
    test = split_ids([r["id"] for r in records])["test"]
    seen_test = test[:3]  # e.g. a chain that a later file put in test but the predictor trained on
    meta = {"split": {"train": ["c0", seen_test[0]], "val": [seen_test[1]]}, "extra_train_ids": [seen_test[2]]}
    got = [r["id"] for r in held_out(records, meta)]
    assert got == [c for c in test if c not in seen_test] and len(got) == len(test) - 3


def test_table_keeps_long_names_and_brackets_the_mean():
    long = "small LightGBM (30 chains, trained just now)"
    rho = np.array([0.2, 0.4, 0.6, 0.8])
    lines = format_rows([(long, rho), ("random", np.zeros(4))], n_boot=200).splitlines()
    assert lines[2].startswith(long + "  +0.500 [") and lines[3].startswith("random" + " " * (len(long) - 4))
    lo, hi = (float(x) for x in lines[2].split("[")[1].rstrip("]").split(","))
    assert lo <= 0.5 <= hi
