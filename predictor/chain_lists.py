"""Apply a per-chain function to one chain or a list, naming a bad chain by its list index.

    results, single = map_chains(score_one, chains, errors="skip")

errors="raise" (default): the first unscorable chain raises its error, prefixed with its index
("chains[3]: chain 'x': reasoning is empty"). errors="skip": every chain is tried; a bad one is
returned in its place as a `ChainFailure` (index, id, error), so the good results are kept.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, Union

from .chains import Chain, ChainFormatError, ChainLike, as_chain, chain_items
from .layout import ChainError

T = TypeVar("T")
ERRORS = ("raise", "skip")


@dataclass(frozen=True)
class ChainFailure:
    """Stands in a result list for a chain that could not be scored: its list index, its id (may be
    empty) and the error message. False in a boolean test, so `[r for r in out if r]` keeps the good."""

    index: int
    id: str
    error: str

    def __bool__(self) -> bool:
        return False


def check_errors(errors: Any) -> None:
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {', '.join(map(repr, ERRORS))}, got {errors!r}")


def map_chains(fn: Callable[..., T], chains: ChainLike | list[ChainLike],
               errors: str = "raise", with_index: bool = False) -> tuple[list[Union[T, ChainFailure]], bool]:
    """(fn(chain) for each chain, was_single). Errors that make one chain unscorable (ChainError,
    ChainFormatError) are prefixed with the list index, or returned as ChainFailure with "skip";
    any other error (a bad option, a crash) always raises, as does TypeError for `chains` that are
    neither a chain nor a list (`chains.chain_items`). with_index: fn(index, chain)."""
    check_errors(errors)
    items, single = chain_items(chains)
    out: list[Union[T, ChainFailure]] = []
    for i, item in enumerate(items):
        cid = item.id if isinstance(item, Chain) else str(item.get("id", "")) if isinstance(item, Mapping) else ""
        try:
            chain = as_chain(item) if single else as_chain(item, f"chains[{i}]")
            out.append(fn(i, chain) if with_index else fn(chain))
        except (ChainError, ChainFormatError) as e:
            msg = str(e) if single or isinstance(e, ChainFormatError) else f"chains[{i}]: {e}"
            if errors == "raise":
                if msg == str(e):
                    raise
                raise type(e)(msg) from e
            out.append(ChainFailure(i, cid, msg))
    return out, single


def map_chains_batched(fn_many: Callable[[list[Chain]], list[T]], chains: ChainLike | list[ChainLike],
                       errors: str = "raise") -> tuple[list[Union[T, ChainFailure]], bool]:
    """`map_chains` for a function of a whole list (several chains per forward pass): fn_many(chains)
    returns one result per chain. When a chain is unscorable (fn_many raised ChainError /
    ChainFormatError, or a chain is malformed), the list falls back to one chain at a time through
    `map_chains`, so errors name the list index and "skip" keeps the good results exactly as there."""
    check_errors(errors)
    one = lambda c: fn_many([c])[0]  # noqa: E731
    items, single = chain_items(chains)
    if single:
        return map_chains(one, chains, errors)
    good: list[tuple[int, Chain]] = []
    malformed = False
    for i, item in enumerate(items):
        try:
            good.append((i, as_chain(item, f"chains[{i}]")))
        except ChainFormatError:
            malformed = True
    if malformed and errors == "raise":
        return map_chains(one, items, errors)  # raises at the first bad chain in list order
    try:
        res = fn_many([c for _, c in good])
    except (ChainError, ChainFormatError):
        return map_chains(one, items, errors)
    if not malformed:
        return list(res), False
    out, _ = map_chains(lambda c: None, items, "skip")  # ChainFailure at the malformed ones
    for (i, _), r in zip(good, res):
        out[i] = r
    return out, False
