"""The exact greedy pruning search (the labeler, the oracle the predictors learn).

`search` is the fast search (`greedy_prune`, `greedy_layout`, their `SearchOptions`, `make_scorer`); `reference` the plain
one it is tested against; `candidates` and `suffix_reuse` score every candidate deletion of one
state (padded rows; packed suffixes over one shared prefix, carried from step to step, with the
bound); `packed_attention` is the packed layout's attention; `result` the search's result type.
"""
from ..ranks import ranks_from_order
from .result import GreedyResult
from .search import SearchOptions, greedy_layout, greedy_prune, make_scorer

__all__ = ["GreedyResult", "SearchOptions", "greedy_layout", "greedy_prune", "make_scorer", "ranks_from_order"]
