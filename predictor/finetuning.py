"""The fine-tuned LM scorer's training pipeline (`predictor finetune`), the same protocol as
`training.py`: chains split by id with the same rule, so its validation and test chains are the
feature predictors'; pruned greedy states of the training chains as extra examples; extra chains
(--extra-train) train only; early stopping on validation; test scored once, for the report.

1. read ranked chains; 2. load their LM; 3. split; 4. examples (layouts + normalized ranks);
5. fit `LMRanker`; 6. validation and test Spearman with 95% CIs; 7. save the predictor directory.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .jsonl_io import atomic_write_text


@dataclass
class FinetuneConfig:
    data: str = "data/ranked/gsm8k-smollm2-joint.jsonl"
    extra_train: str | None = None
    out: str = "runs/finetune"
    model: str | None = None
    device: str | None = None
    objective: str = "joint"
    states: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    limit: int | None = None
    threads: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  # LMRanker __init__ parameters
    ship: bool = False
    ship_name: str = "smollm2-joint-finetuned"
    n_boot: int = 2000
    progress: bool = True


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def examples_for(records, lm, states=(0.0,)) -> list:
    """`RankExample`s of ranked records: the full chain plus each pruned greedy state fraction."""
    from .layout import encode_chain
    from .lm_ranker import RankExample
    from .ranked import record_chain
    from .training_data import state_targets

    out = []
    for rec in records:
        lay = encode_chain(lm.tokenizer, record_chain(rec), lm.max_length)
        for f in sorted({0.0, *states}):
            st = state_targets(rec["order"], f)
            if st is not None:
                out.append(RankExample(lay, st[0], st[1]))
    return out


def run_finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    from .metrics import per_chain_spearman
    from .lm_ranker import LMRanker
    from .predictor_dir import pretrained_dir, save_predictor
    from .runtime import load_lm_on
    from .splits import split_ids
    from .training import check_approximate_held_out, ci_dict, format_table, read_training_records
    from .training_data import check_records_match_lm, file_sha256

    read = read_training_records(cfg)
    records, by_id, extra = read.records, read.by_id, read.extra
    lm = load_lm_on(cfg.model, cfg.device, cfg.threads)
    check_records_match_lm(records + extra, lm)
    split = split_ids(list(by_id), cfg.fractions, seed=cfg.seed)
    check_approximate_held_out(read.approximate, split)
    train = examples_for([by_id[i] for i in split["train"]], lm, cfg.states) + examples_for(extra, lm)
    val = examples_for([by_id[i] for i in split["val"]], lm)
    test = examples_for([by_id[i] for i in split["test"]], lm)
    _log(f"{len(records)} chains: {len(split['train'])} train (+{len(extra)} extra) / {len(split['val'])} val / "
         f"{len(split['test'])} test; {len(train)} training examples")
    ranker = LMRanker(**{"seed": cfg.seed, "progress": cfg.progress, **cfg.params})
    t0 = time.perf_counter()
    ranker.fit(lm, train, val)
    fit_s = time.perf_counter() - t0

    def rho(ex):
        return per_chain_spearman(ranker.score_layouts([e.layout for e in ex]), [e.y for e in ex])

    row = {"name": "lm-ranker (LoRA + sequence head)", "kind": "lm-ranker", "passes": 1, "fit_seconds": fit_s,
           "params": ranker.get_params(), "val": ci_dict(rho(val), cfg.n_boot, cfg.seed),
           "test": ci_dict(rho(test), cfg.n_boot, cfg.seed)}
    meta = {"lm_fingerprint": lm.fingerprint, "lm_name": lm.name, "feature_spec": {}, "feature_names": [],
            "objective": cfg.objective, "train_data": str(cfg.data), "train_data_sha256": file_sha256(cfg.data),
            "n_train_chains": len(split["train"]) + len(extra), "split": split, "states": list(cfg.states),
            "seed": cfg.seed, "regressor_params": ranker.get_params(),
            "metrics": {"val": row["val"], "test": row["test"]}}
    if extra:
        meta.update(extra_train_data=str(cfg.extra_train), extra_train_data_sha256=file_sha256(cfg.extra_train))
    out = Path(cfg.out)
    save_predictor(out / "predictor", ranker, meta)
    if cfg.ship:
        save_predictor(pretrained_dir(cfg.ship_name), ranker, meta)
        _log(f"shipped the predictor to {pretrained_dir(cfg.ship_name)}")
    table = format_table([row])
    result = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
              "rows": [row], "table": table, "split": split}
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=1, default=float))
    atomic_write_text(out / "summary.txt", table + "\n")
    print(table)
    print(f"\npredictor saved to {out / 'predictor'}; metrics in {out / 'metrics.json'}")
    return result
