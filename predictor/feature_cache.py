"""On-disk cache of feature tables, so training and evaluation never recompute a forward pass.

Layout: <root>/<lm fingerprint>/<spec fingerprint>/names.json   (column names + groups, written once)
                                                 /<key[:2]>/<key>.npz  (values float32 [n, F])
key = hash of the chain's id and text and the kept-state. A different LM or FeatureSpec (including
FEATURE_VERSION) lands in another directory, which is what invalidates old entries. Files are
written atomically (temp file + os.replace) and loaded with allow_pickle=False; an unreadable or
inconsistent entry counts as a miss and is recomputed. Groups that run their own LM passes
(`features.SEARCH_GROUPS`, e.g. loo) are stored under a spec of their own, apart from the other groups.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from .chains import ChainLike, as_chain, as_chain_list
from .features import SEARCH_GROUPS, FeatureSpec, FeatureTable, extract_features_many
from .jsonl_io import atomic_write_bytes, atomic_write_text


def _names_sha(names: list[str], groups: list[str]) -> str:
    return hashlib.sha256(json.dumps([names, groups]).encode()).hexdigest()[:16]


def chain_key(chain: ChainLike, kept: list[int] | None = None) -> str:
    """24 hex chars identifying (chain id, question, reasoning, answer, kept)."""
    c = as_chain(chain)
    payload = json.dumps([c.id, c.question, c.reasoning, c.answer, None if kept is None else list(kept)])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


class FeatureCache:
    """Feature tables keyed by (LM fingerprint, spec fingerprint, chain content, kept-state)."""

    def __init__(self, root: str | Path | None = None):
        if root is None:
            from .lm import cache_root

            root = cache_root() / "features"
        self.root = Path(root)
        self._names: dict[Path, tuple[list[str], list[str]]] = {}
        self.hits = self.misses = 0

    def directory(self, lm_fingerprint: str, spec: FeatureSpec) -> Path:
        return self.root / lm_fingerprint / spec.fingerprint()

    def path(self, lm_fingerprint: str, spec: FeatureSpec, chain: ChainLike, kept: list[int] | None = None) -> Path:
        key = chain_key(chain, kept)
        return self.directory(lm_fingerprint, spec) / key[:2] / f"{key}.npz"

    def _load_names(self, d: Path) -> tuple[list[str], list[str]] | None:
        if d not in self._names:
            try:
                meta = json.loads((d / "names.json").read_text())
                self._names[d] = (list(meta["names"]), list(meta["groups"]))
            except (OSError, ValueError, KeyError, TypeError):
                return None
        return self._names[d]

    def get(self, lm_fingerprint: str, spec: FeatureSpec, chain: ChainLike,
            kept: list[int] | None = None) -> FeatureTable | None:
        """The cached table, or None (missing, unreadable or inconsistent with names.json)."""
        path = self.path(lm_fingerprint, spec, chain, kept)
        names = self._load_names(path.parents[1])
        if names is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                values, sha = z["values"], str(z["names_sha"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            return None
        if values.ndim != 2 or values.shape[1] != len(names[0]) or sha != _names_sha(*names):
            return None
        return FeatureTable(list(names[0]), list(names[1]), values.astype(np.float32, copy=False), as_chain(chain).id)

    def put(self, lm_fingerprint: str, spec: FeatureSpec, chain: ChainLike, table: FeatureTable,
            kept: list[int] | None = None) -> Path:
        """Store a table; the first put for an (LM, spec) writes names.json, later ones must match it."""
        path = self.path(lm_fingerprint, spec, chain, kept)
        d = path.parents[1]
        names = self._load_names(d)
        if names is None:
            d.mkdir(parents=True, exist_ok=True)
            meta = {"names": table.names, "groups": table.groups, "spec": spec.to_dict(), "lm": lm_fingerprint}
            atomic_write_text(d / "names.json", json.dumps(meta))
            names = self._names[d] = (list(table.names), list(table.groups))
        elif names != (table.names, table.groups):
            raise RuntimeError(f"{d / 'names.json'}: cached feature names differ from the computed ones for the "
                               "same spec fingerprint (feature code changed without a FEATURE_VERSION bump?); "
                               "delete that directory")
        buf = io.BytesIO()
        np.savez(buf, values=np.asarray(table.values, dtype=np.float32), names_sha=np.array(_names_sha(*names)))
        atomic_write_bytes(path, buf.getvalue())
        return path

    def features_for(self, lm, chain: ChainLike, spec: FeatureSpec | None = None,
                     kept: list[int] | None = None) -> FeatureTable:
        """Load the chain's table, or compute (one forward pass) and store it."""
        return self.features_for_many(lm, [chain], spec, [kept])[0]

    def features_for_many(self, lm, chains, spec: FeatureSpec | None = None,
                          kept: list[list[int] | None] | None = None) -> list[FeatureTable]:
        """Tables of several chains (kept: per chain, or None): cached ones loaded, the others computed
        together (several chains per forward pass) and stored."""
        spec = spec or FeatureSpec()
        chains = as_chain_list(chains)[0]
        kept = list(kept) if kept is not None else [None] * len(chains)
        search = tuple(g for g in spec.groups if g in SEARCH_GROUPS)
        if search and len(search) < len(spec.groups):
            # groups that run their own LM passes are stored apart, so adding one to a spec reuses the
            # other groups' tables (features_from_observation puts them last: the join is the same table)
            rest = replace(spec, groups=tuple(g for g in spec.groups if g not in SEARCH_GROUPS))
            return [a.hstack(b) for a, b in zip(self.features_for_many(lm, chains, rest, kept),
                                                self.features_for_many(lm, chains, replace(spec, groups=search), kept))]
        out: list[FeatureTable | None] = [self.get(lm.fingerprint, spec, c, k) for c, k in zip(chains, kept)]
        todo = [i for i, t in enumerate(out) if t is None]
        self.hits += len(chains) - len(todo)
        self.misses += len(todo)
        if todo:
            tables = extract_features_many(lm, [chains[i] for i in todo], spec, [kept[i] for i in todo])
            for i, table in zip(todo, tables):
                self.put(lm.fingerprint, spec, chains[i], table, kept[i])
                out[i] = table
        return out  # type: ignore[return-value]
