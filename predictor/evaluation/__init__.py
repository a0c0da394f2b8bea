"""Evaluation of scorers and learned predictors against the greedy oracle.

    from predictor.evaluation import evaluate, write_report
    results = evaluate(lm, records, predictor="predictor/pretrained/smollm2-joint")
    write_report("reports/smollm2-joint", results)

`run.evaluate` runs the LM-dependent parts and collects everything into one JSON-able results dict;
the building blocks work on plain arrays (`predictor.metrics`, `agreement`, `ablation`, `fidelity`,
`categories`, `cost`, `report`); `held_out` says which chains can measure a predictor.
"""
from ..metrics import (bootstrap_ci, mean_kendall, per_chain_spearman, pooled_spearman, precision_first_pruned,
                       summarize)
from .held_out import seen_ids, split_records, stored_split_ids
from .report import render_markdown, write_report
from .run import DEFAULT_SCORERS, evaluate, joint_vs_answer

__all__ = ["evaluate", "write_report", "render_markdown", "split_records", "seen_ids", "stored_split_ids",
           "joint_vs_answer", "DEFAULT_SCORERS", "bootstrap_ci", "mean_kendall", "per_chain_spearman",
           "pooled_spearman", "precision_first_pruned", "summarize"]
