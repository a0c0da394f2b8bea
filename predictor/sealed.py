"""The sealed test set (issue 31): chains no experiment reads until a final predictor is chosen.

`data/sealed_test.json` lists, per domain, the ids of the sealed chains of that domain's labeling queue
(`data/sealed_test.md` states the rule and how the set is to be used). The rule, fixed once:

    u(id)  = first 8 bytes of SHA-256("sealed:<seed>:<id>") / 2**64, uniform in [0, 1)
    sealed = {id in the queue : u(id) < fraction} minus the ids labeled before sealing

"Labeled before sealing" = an id (or a policy state's `parent_id`) in any ranked file under data/ranked/
or a labeler's output under runs/label/ at the time the file was written: those chains had been read
already. Since ranked files only grow, the rule stays checkable: every queue id with u < fraction that
is not sealed is in a committed ranked file, and no sealed id is (tests/test_sealed.py).

API: `sealed_ids(domain) -> set[str]`, `all_sealed_ids()`, `is_sealed(id)`, `without_sealed(chains)`,
`check_unsealed(ids, what)`. `python -m predictor.sealed strip --in QUEUE --out FILE` writes a queue
without its sealed chains (what labelers and training read); `only` writes just the sealed chains (to
label them for the one scoring); `build` wrote the list (once).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SEALED_FILE = ROOT / "data" / "sealed_test.json"
SEED = 31
# domain -> (labeling queue relative to the repository root, fraction of the queue sealed)
QUEUES: dict[str, tuple[str, float]] = {
    "gsm8k": ("data/chains/gsm8k-train-20-64.jsonl", 0.10),
    "aqua": ("data/chains/aqua-20-64.jsonl", 0.25),
    "strategyqa": ("data/chains/strategyqa-20-64.jsonl", 0.10),
}
# SHA-256 of the sealed ids (json.dumps of {domain: sorted ids}, sorted keys): the list never changes
SEALED_DIGEST = "d343991e6651fd4ef6a6c499809cec7d61e9ba2a14dd57578cec15178a0856d9"


class SealedError(ValueError):
    """A sealed chain reached code that must not read it, or the sealed list is missing or altered."""


def sealed_hash(chain_id: str, seed: int = SEED) -> float:
    """u(id) in [0, 1): the seeded hash that picks sealed chains."""
    h = hashlib.sha256(f"sealed:{seed}:{chain_id}".encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def select(queue_ids: Iterable[str], read_ids: set[str], fraction: float, seed: int = SEED) -> list[str]:
    """Sealed ids of one queue, in queue order: u(id) < fraction and not in `read_ids`."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    return [i for i in queue_ids if sealed_hash(i, seed) < fraction and i not in read_ids]


def ids_digest(domains: Mapping[str, Iterable[str]]) -> str:
    """SHA-256 of {domain: sorted ids} (JSON, sorted keys): what SEALED_DIGEST pins."""
    data = json.dumps({d: sorted(ids) for d, ids in domains.items()}, sort_keys=True)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def read_ids(paths: Iterable[Path]) -> set[str]:
    """Ids (and `parent_id`s) of every record of JSONL files: the chains they have read."""
    out: set[str] = set()
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                out.add(str(rec["id"]))
                if rec.get("parent_id") is not None:
                    out.add(str(rec["parent_id"]))
    return out


SEALED_RANKED = Path("data") / "ranked" / "sealed"  # the sealed chains' labels, written for the one scoring


def ranked_files(root: Path = ROOT) -> list[Path]:
    """Every committed ranked file (data/ranked/**/*.jsonl) but the sealed chains' own (data/ranked/sealed/)."""
    sealed_dir = root / SEALED_RANKED
    return sorted(p for p in (root / "data" / "ranked").rglob("*.jsonl") if sealed_dir not in p.parents)


def sealed_ranked_files(root: Path = ROOT) -> list[Path]:
    """The labels of sealed chains (data/ranked/sealed/*.jsonl): read only by the one scoring."""
    return sorted((root / SEALED_RANKED).glob("*.jsonl"))


def queue_ids(domain: str, root: Path = ROOT) -> list[str]:
    """Chain ids of a domain's labeling queue, in queue order."""
    path = root / _queue(domain)[0]
    return [str(json.loads(line)["id"]) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _queue(domain: str) -> tuple[str, float]:
    if domain not in QUEUES:
        raise KeyError(f"unknown sealed domain {domain!r}; choose one of {', '.join(QUEUES)}")
    return QUEUES[domain]


@lru_cache(maxsize=None)
def _load(path: str) -> dict[str, frozenset[str]]:
    p = Path(path)
    if not p.is_file():
        raise SealedError(f"{p} is missing: the sealed test list is committed with the repository")
    obj = json.loads(p.read_text(encoding="utf-8"))
    domains = {d: frozenset(v["ids"]) for d, v in obj["domains"].items()}
    if p == SEALED_FILE and ids_digest(domains) != SEALED_DIGEST:
        raise SealedError(f"{p} was altered: its ids no longer match predictor.sealed.SEALED_DIGEST")
    return domains


def sealed_ids(domain: str, path: Path = SEALED_FILE) -> set[str]:
    """Ids of the sealed chains of `domain` ("gsm8k", "aqua", "strategyqa")."""
    _queue(domain)
    return set(_load(str(path))[domain])


def all_sealed_ids(path: Path = SEALED_FILE) -> set[str]:
    """Ids of the sealed chains of every domain."""
    return set().union(*_load(str(path)).values())


def is_sealed(chain_id: str, path: Path = SEALED_FILE) -> bool:
    return str(chain_id) in all_sealed_ids(path)


def _ids_of(chain: Any) -> list[str]:
    """A chain's id and, for a pruned state of another chain, that chain's id (`parent_id`)."""
    if isinstance(chain, Mapping):
        ids = [chain["id"], chain.get("parent_id")]
    else:
        ids = [chain.id, getattr(chain, "parent_id", None)]
    return [str(i) for i in ids if i is not None]


def record_ids(records: Iterable[Any]) -> list[str]:
    """Every id and parent_id of records (mappings or `Chain`s): what `check_unsealed` should be given."""
    return [i for r in records for i in _ids_of(r)]


def without_sealed(chains: Iterable[Any], path: Path = SEALED_FILE) -> list[Any]:
    """The chains (mappings or `Chain`s with an id) that are neither sealed nor a state of a sealed
    chain, in order."""
    sealed = all_sealed_ids(path)
    return [c for c in chains if not sealed.intersection(_ids_of(c))]


def check_unsealed(ids: Iterable[str], what: str = "data", path: Path = SEALED_FILE) -> None:
    """Raise SealedError if any of `ids` is sealed (for code that trains or selects on `what`; pass
    `record_ids(records)` so that states of sealed chains count too)."""
    hit = sorted(set(map(str, ids)) & all_sealed_ids(path))
    if hit:
        raise SealedError(f"{what} holds {len(hit)} sealed chain(s) (e.g. {hit[0]!r}); "
                          "see data/sealed_test.md")


def filter_file(inp: Path, out: Path, keep_sealed: bool) -> tuple[int, int]:
    """Copy the lines of a JSONL file whose record is (keep_sealed) or is not sealed (a state counts as
    its parent chain) to `out`, atomically; returns (kept, read). Raises FileNotFoundError / ValueError
    naming the file and line (not JSON, no "id", not UTF-8; --out over the input or a directory)."""
    from .jsonl_io import atomic_write_text, check_paths

    inp, out = Path(inp), Path(out)
    check_paths(inp, out, what="JSONL file")
    try:
        text = inp.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{inp}: not valid UTF-8 (byte {e.start + 1})") from None
    sealed, kept, n = all_sealed_ids(), [], 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{inp}:{lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
        if not isinstance(rec, dict) or rec.get("id") is None:
            raise ValueError(f"{inp}:{lineno}: id: missing (every record needs an \"id\")")
        n += 1
        if bool(sealed.intersection(_ids_of(rec))) == keep_sealed:
            kept.append(line)
    if keep_sealed and not kept:
        raise ValueError(f"{inp}: none of its {n} records is sealed (expected a labeling queue: "
                         f"{', '.join(q for q, _ in QUEUES.values())}); nothing written")
    atomic_write_text(out, "".join(line + "\n" for line in kept))
    return len(kept), n


def build(root: Path = ROOT) -> dict[str, Any]:
    """The sealed list from today's queues and labels (run once; see the module doc)."""
    read = read_ids(ranked_files(root) + sorted((root / "runs" / "label").glob("*.jsonl")))
    domains = {}
    for domain, (queue, fraction) in QUEUES.items():
        ids = select(queue_ids(domain, root), read, fraction)
        domains[domain] = {"queue": queue, "fraction": fraction, "ids": ids}
    return {"seed": SEED, "rule": "u(id) = int(sha256('sealed:<seed>:<id>')[:8 bytes]) / 2**64; sealed = queue "
                                  "ids with u < fraction that no ranked file had read when this was written",
            "domains": domains}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m predictor.sealed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the sealed list (refuses to replace an existing one)")
    b.add_argument("--out", type=Path, default=SEALED_FILE)
    s = sub.add_parser("strip", help="copy a chains/ranked JSONL file without its sealed chains")
    s.add_argument("--in", dest="inp", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    o = sub.add_parser("only", help="copy only the sealed chains of a chains JSONL file (to label them once the "
                                    "final predictor is chosen; write the labels under data/ranked/sealed/)")
    o.add_argument("--in", dest="inp", type=Path, required=True)
    o.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.cmd == "build":
        if args.out.exists():
            raise SystemExit(f"{args.out} exists: the sealed set is chosen once")
        obj = build()
        args.out.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
        digest = ids_digest({d: v["ids"] for d, v in obj["domains"].items()})
        sizes = ", ".join(f"{d} {len(v['ids'])}" for d, v in obj["domains"].items())
        print(f"wrote {args.out}: {sizes}; digest {digest}")
        return 0
    try:
        kept, n = filter_file(args.inp, args.out, keep_sealed=args.cmd == "only")
    except (ValueError, FileNotFoundError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    what = "only sealed chains kept" if args.cmd == "only" else f"{n - kept} sealed left out"
    print(f"wrote {kept} of {n} records to {args.out} ({what})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
