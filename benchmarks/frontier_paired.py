"""Combine `approximate_frontier.py` runs over the same chains and pair their methods chain by chain.

Several runs (e.g. a test set's one-pass and budget rows from one run, a new method from a later run
split in halves over the two cores) are read from their `frontier.json`; each method's rows are
pooled across runs (a method in several runs: the later file wins for a chain). Over the chains that
`--on` holds, prints per method the mean per-chain Spearman with exact greedy [95% bootstrap CI], the
lowest chain, the LM-token share, the median seconds and the objective regret at each keep ratio of
the runs (regret0, 1, ... in the order of their --regret-ratios; not pooled across runs whose rows
hold different numbers of ratios), then
the paired Spearman differences `--pairs` (A-B: mean [95% CI], chains where A is better). Writes the
same text to --out when given.

    python benchmarks/frontier_paired.py --runs reports/frontier/long-test/frontier.json \\
        reports/frontier/long-test-prio/a/frontier.json reports/frontier/long-test-prio/b/frontier.json \\
        --on prio4 --pairs prio4-one-pass,prio4-lazy-0.1,prio4-budget-0.1,sc3-one-pass,prio4-sc3 \\
        --out reports/frontier/long-test-prio/combined.txt
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pooled(paths: list[str]) -> dict[str, dict[str, dict]]:
    """{method: {chain id: row}} over the runs' frontier.json files (later files win)."""
    out: dict[str, dict[str, dict]] = {}
    for path in paths:
        try:
            with open(path) as f:
                chains = json.load(f)["chains"]
            for name, rows in chains.items():
                out.setdefault(name, {}).update({r["id"]: r for r in rows})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise SystemExit(f"{path}: not a frontier.json of approximate_frontier.py ({type(e).__name__}: {e})")
    return out


def report(by: dict[str, dict[str, dict]], on: str, pairs: list[tuple[str, str]]) -> list[str]:
    from predictor.metrics import bootstrap_ci

    if on not in by:
        raise SystemExit(f"--on {on}: no such method (have: {', '.join(by)})")
    ids = list(by[on])
    if not ids:
        raise SystemExit(f"--on {on}: the method has no chains")
    lines = [f"{len(ids)} chains (those of {on})"]
    for name, rows in by.items():
        if not all(i in rows for i in ids):
            continue
        rs = [rows[i] for i in ids]
        m, lo, hi = bootstrap_ci([r["spearman"] for r in rs])
        line = (f"{name:16s} {m:.3f} [{lo:.3f}, {hi:.3f}] lowest {min(r['spearman'] for r in rs):.3f} "
                f"share {np.mean([r['share'] for r in rs]):.3f} s {np.median([r['seconds'] for r in rs]):.1f}")
        widths = {len(r.get("regret") or []) for r in rs}
        regret = np.array([r["regret"] for r in rs], dtype=float) if len(widths) == 1 else np.zeros((0, 0))
        if len(widths) > 1:
            line += " | regret: runs with different keep ratios, not pooled"
        for j in range(regret.shape[1] if regret.ndim == 2 else 0):
            m2, l2, h2 = bootstrap_ci(regret[:, j])
            line += f" | regret{j} {m2:.1f} [{l2:.1f}, {h2:.1f}]"
        lines.append(line)
    for a, b in pairs:
        for name in (a, b):
            if name not in by or not all(i in by[name] for i in ids):
                raise SystemExit(f"--pairs: {name} lacks some of the {len(ids)} chains")
        d = [by[a][i]["spearman"] - by[b][i]["spearman"] for i in ids]
        m, lo, hi = bootstrap_ci(d)
        lines.append(f"{a} - {b}: {m:+.3f} [{lo:+.3f}, {hi:+.3f}] ({sum(x > 0 for x in d)}/{len(d)})")
    return lines


def _pair(s: str, names: set[str]) -> tuple[str, str]:
    """'A-B' into (A, B), where method names may themselves hold '-' (the split that names two methods)."""
    for k in range(1, len(s)):
        if s[k] == "-" and s[:k] in names and s[k + 1:] in names:
            return s[:k], s[k + 1:]
    raise SystemExit(f"--pairs: {s!r} is not METHOD-METHOD of known methods ({', '.join(sorted(names))})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, help="frontier.json files of approximate_frontier.py")
    p.add_argument("--on", required=True, help="method whose chains are compared (every reported method has them)")
    p.add_argument("--pairs", default="", help="comma list of A-B method pairs for paired differences")
    p.add_argument("--out", default=None, help="also write the text here")
    args = p.parse_args(argv)
    by = pooled(args.runs)
    pairs = [_pair(x.strip(), set(by)) for x in args.pairs.split(",") if x.strip()]
    lines = report(by, args.on, pairs)
    print("\n".join(lines))
    if args.out:
        from predictor.jsonl_io import atomic_write_text

        atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
