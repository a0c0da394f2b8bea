"""predictor: learn the greedy pruning order of LLM reasoning tokens and prune with one forward pass.

Public API (imported lazily, so `import predictor` is cheap and has no side effects):
    load_lm, greedy_prune, observe, extract_features, RankPredictor, prune, PruneOptions, read_chains, Chain
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Chain": "predictor.chains",
    "read_chains": "predictor.chains",
    "load_lm": "predictor.lm",
    "greedy_prune": "predictor.greedy",
    "observe": "predictor.observe",
    "extract_features": "predictor.features",
    "FeatureSpec": "predictor.features",
    "FeatureTable": "predictor.features",
    "FeatureCache": "predictor.feature_cache",
    "RankPredictor": "predictor.rank_predictor",
    "prune": "predictor.rank_predictor",
    "PruneOptions": "predictor.pruning",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'predictor' has no attribute {name!r}")
