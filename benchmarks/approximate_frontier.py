"""The cost/quality frontier between one pass and the exact greedy search (issue 28).

For every chain of a ranked file (exact greedy labels), runs each method and measures its mean
per-chain Spearman with the exact ranks (95% bootstrap CI), the LM tokens it ran as a share of the
exact search's (the record's `lm_tokens`, or the exact search re-run here with --rerun-exact), and
seconds per chain. Methods:
  one-pass      the shipped predictor, one forward pass (`predict_ranks`)
  refresh-K     the predictor re-run on the survivors K times (`predict_ranks(refresh=K)`)
  stride-S      the exact search deleting S tokens per step (`greedy_layout(lm, lay, SearchOptions(stride=S))`)
  budget-F      the approximate search (`predictor.greedy.approximate`, `label --budget F`): the shortlist
                search under a token allowance, the shipped predictor as its proposer
  lazy-F        --lazy-budgets: the approximate search without a proposer (lazy re-scoring)
  NAME          --variants: the approximate search with knobs of `ApproximateOptions` replaced; a variant
                with shortlist K > 0 gets the one-pass predictor, re-run on the current kept sequence, as
                its proposer (`approximate.predictor_proposer`; field propose=False: none; propose='atp' or
                'atp*': attribution patching's estimates, `greedy.attribution_patching`)
  exact         the exact search re-run (--rerun-exact: its seconds, same run)
The predictor's LM tokens are counted as K x (prompt + reasoning + answer), the forward passes it runs.
Objective regret (--regret-ratios, default 0.25,0.5,0.75): at each keep ratio, the exact objective (the
record's, JOINT or ANSWER) of the kept set each method chooses minus that of exact greedy's kept set
(nats, per chain; one forward per kept set, `evaluation.fidelity.chain_fidelity`); negative = less
likely than greedy's. Paired differences of Spearman against --paired (default one-pass).
Writes OUT/frontier.json, OUT/frontier.md (the table) and OUT/frontier.png (Spearman against LM-token
share, log x). One thread by default; seconds are only comparable within one run.

    python benchmarks/approximate_frontier.py --ranked data/ranked/long/gsm8k-smollm2-joint.jsonl \\
        --ids gsm8k-train-1503,gsm8k-train-366,gsm8k-train-3029 --budgets 0.1,0.3 --refresh 1,5 --out reports/frontier/long
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def _args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranked", nargs="+", required=True, help="ranked JSONL file(s) with exact greedy labels")
    p.add_argument("--split", default="all", choices=["all", "train", "val", "test"],
                   help="chains of this split (by chain id, predictor.splits; default all)")
    p.add_argument("--min-n", type=int, default=1, help="shortest reasoning (tokens) to include")
    p.add_argument("--max-n", type=int, default=100000, help="longest reasoning (tokens) to include")
    p.add_argument("--ids", default=None, help="comma list of chain ids to keep (default: all)")
    p.add_argument("--limit", type=int, default=None, help="at most this many chains (file order)")
    p.add_argument("--budgets", default="0.03,0.1", help="comma list of --budget values (default %(default)s)")
    p.add_argument("--lazy-budgets", default="", help="comma list of budgets for the search without a proposer")
    p.add_argument("--variants", default="",
                   help="semicolon list of NAME=BUDGET[,FIELD=VALUE...]: the approximate search with "
                        "ApproximateOptions.for_budget(BUDGET) and these fields replaced (values as Python "
                        "literals), e.g. 'margin1=0.1,margin=1.0;rows=0.1,pack=False'; pseudo-fields: "
                        "propose=False (no proposer), propose='atp' / 'atp*' (attribution patching's estimates, "
                        "linear / with AtP*'s attention fix, `greedy.attribution_patching`), budgeted=True "
                        "(start from for_budget's proposer setting, what --budgets runs, instead of its lazy one)")
    p.add_argument("--strides", default="", help="comma list of strides (default none)")
    p.add_argument("--refresh", default="1", help="comma list of predictor refresh counts; '' for none")
    p.add_argument("--predictor", default=None, help="predictor dir (default: the shipped one)")
    p.add_argument("--rerun-exact", action="store_true", help="re-run the exact search (its seconds and tokens)")
    p.add_argument("--estimate-exact", action="store_true",
                   help="for records without lm_tokens, take the exact search's LM tokens from its cost estimate "
                        "(`approximate.exact_cost_estimate`, within 0.87-1.2 of the measured counts) instead of "
                        "re-running it; the table then also lists the recorded exact seconds")
    p.add_argument("--regret-ratios", default="0.25,0.5,0.75",
                   help="keep ratios of the objective regret against exact greedy ('' for none)")
    p.add_argument("--paired", default="one-pass", help="method the paired Spearman differences are against")
    p.add_argument("--approximate-reference", action="store_true",
                   help="accept approximate records (`label --shortlist K` / --budget / --stride) as the reference, "
                        "for chains too long to label exactly (500+ tokens): Spearman and regret are then with that "
                        "reference, not with exact greedy, and an approximate record's LM-token shares are of the exact "
                        "search's cost estimate (`approximate.exact_cost_estimate`; exact records keep their count); "
                        "without it such records are refused; not with --rerun-exact")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", required=True, help="output folder")
    return p.parse_args(argv)


def _variants(s: str) -> list[tuple[str, float, dict]]:
    import ast

    out = []
    for item in filter(None, (x.strip() for x in s.split(";"))):
        name, _, spec = item.partition("=")
        budget, *fields = spec.split(",")
        out.append((name, float(budget), {k: ast.literal_eval(v) for k, v in (x.split("=", 1) for x in fields)}))
    return out


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def main(argv=None) -> int:
    args = _args(argv)
    torch.set_num_threads(args.threads)
    from scipy.stats import spearmanr

    from predictor import RankPredictor, load_lm
    from predictor.greedy import SearchOptions, greedy_layout
    from predictor.greedy.approximate import (ApproximateOptions, approximate_greedy_layout, exact_cost_estimate,
                                              predictor_proposer)
    from predictor.greedy.attribution_patching import attribution_proposer
    from predictor.layout import Layout

    recs = select_records([json.loads(line) for f in args.ranked for line in open(f) if line.strip()],
                          args.split, args.ids)
    recs = [r for r in recs if args.min_n <= len(r["reasoning_ids"]) <= args.max_n][: args.limit]
    if not recs:
        raise SystemExit("no chains match")
    reference = check_reference(recs, args.approximate_reference)
    if args.approximate_reference and args.rerun_exact:
        raise SystemExit("--rerun-exact and --approximate-reference: the re-run exact search would be the reference; "
                         "pass one of them")
    approx_ids = {i for i, label in reference.items() if label != "exact"}
    lm = load_lm()
    variants = _variants(args.variants)
    proposing = bool(_floats(args.budgets) or variants)
    rp = RankPredictor.load(args.predictor, lm=lm) if _floats(args.refresh) or proposing else None
    ratios = _floats(args.regret_ratios)
    rows: dict[str, list[dict]] = {}
    estimated: set[str] = set()

    def add(name, r, ranks, tokens, secs, exact_tokens):
        rho = float(spearmanr(r["ranks"], ranks)[0]) if len(r["ranks"]) > 1 else 1.0
        regret = chain_regret(lm.model, r, ranks, ratios) if ratios else []
        rows.setdefault(name, []).append({"id": r["id"], "n": len(r["ranks"]), "spearman": rho,
                                          "lm_tokens": int(tokens), "share": tokens / exact_tokens,
                                          "seconds": secs, "regret": regret,
                                          "ranks": [float(x) for x in ranks]})
        print(f"{r['id']} n={len(r['ranks'])} {name}: {rho:.3f}, {tokens / exact_tokens:.3f} of exact tokens, "
              f"{secs:.1f} s, regret {' '.join(f'{x:.2f}' for x in regret)}", flush=True)

    done: list[dict] = []
    for r in recs:
        lay = Layout(r["prompt_ids"], r["reasoning_ids"], r["answer_ids"])
        chain = {"id": r["id"], "question": r["question"], "reasoning": r["reasoning"], "answer": r["answer"]}
        # an approximate record's lm_tokens are its own search's, not the exact search's
        exact_tokens = None if r["id"] in approx_ids else r.get("lm_tokens")
        if not exact_tokens and (args.estimate_exact or r["id"] in approx_ids) and not args.rerun_exact:
            exact_tokens = exact_cost_estimate(lay.n, len(lay.answer_ids))
            estimated.add(r["id"])
        if args.approximate_reference:
            add(f"reference ({reference[r['id']]}, recorded)", r, r["ranks"], r.get("lm_tokens") or 0,
                float(r.get("seconds") or 0), exact_tokens)
        elif not args.rerun_exact and r.get("seconds") and (args.estimate_exact or r.get("lm_tokens")):
            add("exact (recorded)", r, r["ranks"], exact_tokens, float(r["seconds"]), exact_tokens)
        if args.rerun_exact or not exact_tokens:
            t = time.perf_counter()
            ex = greedy_layout(lm, lay, SearchOptions(r["objective"]))
            secs = time.perf_counter() - t
            if ex.order != r["order"]:
                print(f"{r['id']}: the re-run exact order differs from the record's (float round-off)")
            exact_tokens = ex.lm_tokens
            add("exact", r, ex.ranks, ex.lm_tokens, secs, exact_tokens)
        for k in [int(x) for x in _floats(args.refresh)]:
            t = time.perf_counter()
            ranks = rp.predict_ranks(chain, refresh=k)
            add("one-pass" if k == 1 else f"refresh-{k}", r, ranks, k * lay.total, time.perf_counter() - t,
                exact_tokens)
        for s in [int(x) for x in _floats(args.strides)]:
            t = time.perf_counter()
            res = greedy_layout(lm, lay, SearchOptions(r["objective"], stride=s))
            add(f"stride-{s}", r, res.ranks, res.lm_tokens, time.perf_counter() - t, exact_tokens)
        for f in _floats(args.budgets):
            t = time.perf_counter()
            res = approximate_greedy_layout(lm, lay, r["objective"], budget=f, proposer=predictor_proposer(rp, chain))
            add(f"budget-{f:g}", r, res.ranks, res.lm_tokens, time.perf_counter() - t, exact_tokens)
        for f in _floats(args.lazy_budgets):
            t = time.perf_counter()
            res = approximate_greedy_layout(lm, lay, r["objective"], budget=f)
            add(f"lazy-{f:g}", r, res.ranks, res.lm_tokens, time.perf_counter() - t, exact_tokens)
        for name, f, fields in variants:
            fields = dict(fields)
            propose = fields.pop("propose", True)
            budgeted = fields.pop("budgeted", False)  # base: for_budget's proposer setting, else its lazy one
            base = ApproximateOptions.for_budget(f, lay.n, len(lay.answer_ids), len(lay.prompt_ids),
                                                 proposer=budgeted and propose)
            opts = replace(base, **fields)
            proposer = None
            if opts.shortlist and propose in ("atp", "atp*"):
                proposer = attribution_proposer(lm, lay, r["objective"], qk_fix=propose == "atp*")
            elif opts.shortlist and propose:
                proposer = predictor_proposer(rp, chain)
            t = time.perf_counter()
            res = approximate_greedy_layout(lm, lay, r["objective"], options=opts, proposer=proposer)
            add(name, r, res.ranks, res.lm_tokens, time.perf_counter() - t, exact_tokens)
        done.append(r)
        lines = _write(Path(args.out), args, rows, done, ratios, estimated, approx_ids)
    print("\n".join(lines))
    return 0


def check_reference(recs: list[dict], approximate_ok: bool) -> dict[str, str]:
    """Per chain id, what its record's order is ("exact", or `ranked.approximate_label`'s "shortlist 4",
    ...). An approximate record without `approximate_ok` raises SystemExit naming it: it would be scored
    as if it were exact greedy."""
    from predictor.ranked import approximate_label

    out = {}
    for r in recs:
        label = approximate_label(r)
        if label is not None and not approximate_ok:
            raise SystemExit(f"chain {r['id']!r}: its record is approximate ({label}), no exact greedy reference; "
                             "pass --approximate-reference to score against it anyway")
        out[r["id"]] = label or "exact"
    return out


def select_records(recs: list[dict], split: str = "all", ids: str = "") -> list[dict]:
    """The ranked records of one split (`predictor.splits`, by chain id over these records; "all": every
    one) whose id is in the comma list `ids` (empty: any), in file order."""
    from predictor.splits import split_ids

    if split != "all":
        keep = set(split_ids([r["id"] for r in recs])[split])
        recs = [r for r in recs if r["id"] in keep]
    if ids:
        want = set(ids.split(","))
        recs = [r for r in recs if r["id"] in want]
    return recs


def _write(out: Path, args, rows: dict[str, list[dict]], recs: list[dict], ratios: list[float],
           estimated: set[str], approx_ids: set[str] = frozenset()) -> list[str]:
    """Summarise the chains run so far into OUT/frontier.{md,json,png} (rewritten after every chain,
    each file through a temporary name, so a stopped run keeps its finished chains)."""
    from predictor.jsonl_io import atomic_write_text
    from predictor.metrics import bootstrap_ci

    out.mkdir(parents=True, exist_ok=True)
    summary = []
    ref = {x["id"]: x["spearman"] for x in rows.get(args.paired, [])}
    for name, rs in rows.items():
        mean, lo, hi = bootstrap_ci([x["spearman"] for x in rs])
        shares = [x["share"] for x in rs]
        s = {"method": name, "chains": len(rs), "spearman": mean, "ci": [lo, hi],
             "min": min(x["spearman"] for x in rs), "share": float(np.mean(shares)),
             "share_range": [float(min(shares)), float(max(shares))],
             "seconds": float(np.median([x["seconds"] for x in rs])),
             "regret": [list(bootstrap_ci([x["regret"][j] for x in rs])) for j in range(len(ratios))]}
        both = [x for x in rs if x["id"] in ref]
        if both and name != args.paired and not name.startswith("reference"):
            d = [x["spearman"] - ref[x["id"]] for x in both]
            s["paired"] = {"vs": args.paired, "diff": list(bootstrap_ci(d)), "better": sum(v > 0 for v in d),
                           "chains": len(d)}
        summary.append(s)
    ns = [len(r["ranks"]) for r in recs]
    head = (f"{len(recs)} chains of {min(ns)}-{max(ns)} reasoning tokens (median {int(np.median(ns))}) from "
            f"{', '.join(args.ranked)}, split {args.split}; {args.threads} thread(s)"
            + (f"; exact LM tokens estimated (`exact_cost_estimate`: no exact count recorded) for {len(estimated)} "
               "chain(s)" if estimated else "")
            + ("; 'exact (recorded)' seconds: the labeler's own run, other load" if "exact (recorded)" in rows else "")
            + (f"; for {len(approx_ids & {r['id'] for r in recs})} of these chains the reference is an approximate "
               "search's order (--approximate-reference), not exact greedy: Spearman and regret are against it"
               if getattr(args, "approximate_reference", False) else ""))
    against = "the reference" if getattr(args, "approximate_reference", False) else "exact greedy"
    ci = lambda m, lo, hi: f"{m:.3f} [{lo:.3f}, {hi:.3f}]"  # noqa: E731
    lines = [head, "", f"| method | Spearman with {against} [95% CI] | lowest chain | LM tokens / exact | s per chain (median) |"
             + "".join(f" regret at keep {q:g} (nats) |" for q in ratios),
             "|---|---|---|---|---|" + "---|" * len(ratios)]
    for s in summary:
        lo, hi = s["share_range"]
        lines.append(f"| {s['method']} | {ci(s['spearman'], *s['ci'])} | {s['min']:.3f} | {s['share']:.3f} ({lo:.2f}-{hi:.2f}) "
                     f"| {s['seconds']:.1f} |" + "".join(f" {ci(*g)} |" for g in s["regret"]))
    paired = [s for s in summary if "paired" in s]
    if paired:
        lines += ["", f"Paired Spearman differences against {args.paired} (same chains):", "",
                  "| method | difference [95% CI] | better on |", "|---|---|---|"]
        lines += [f"| {s['method']} | {ci(*s['paired']['diff'])} | {s['paired']['better']} of {s['paired']['chains']} |"
                  for s in paired]
    mutual = _mutual(rows)
    if mutual:
        lines += ["", "Agreement between methods (mean per-chain Spearman between their ranks [95% CI]; "
                  "two orders that both keep greedy's likelihood but disagree with each other show how many "
                  "near-equivalent orders a chain has):", "", "| method | method | Spearman [95% CI] | chains |",
                  "|---|---|---|---|"]
        lines += [f"| {m['a']} | {m['b']} | {ci(*m['spearman'])} | {m['chains']} |" for m in mutual]
    atomic_write_text(out / "frontier.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "frontier.json", json.dumps({"header": head, "summary": summary, "mutual": mutual,
                                                    "chains": rows}, indent=1))
    _plot(summary, out / "frontier.png", head, against)
    return lines


def _mutual(rows: dict[str, list[dict]]) -> list[dict]:
    """Mean per-chain Spearman between every two approximate methods' ranks (exact and reference rows left
    out: their agreement is the main table's)."""
    from scipy.stats import spearmanr

    from predictor.metrics import bootstrap_ci

    names = [n for n in rows if not n.startswith(("exact", "reference"))]
    res = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            rb = {x["id"]: x["ranks"] for x in rows[b]}
            vals = [float(spearmanr(x["ranks"], rb[x["id"]])[0]) for x in rows[a] if x["id"] in rb and len(x["ranks"]) > 1]
            if vals:
                res.append({"a": a, "b": b, "spearman": list(bootstrap_ci(vals)), "chains": len(vals)})
    return res


def chain_regret(model, record: dict, ranks, ratios: list[float]) -> list[float]:
    """Per keep ratio: the exact objective (the record's) of the kept set `ranks` chooses minus that of
    exact greedy's kept set (the record's order), nats; one forward per distinct kept set."""
    from predictor.evaluation.fidelity import chain_fidelity

    fid = chain_fidelity(model, record, {"method": np.asarray(ranks)}, ratios)
    obj = record.get("objective", "joint")
    return [float(a - b) for a, b in zip(fid["method"][obj], fid["greedy"][obj])]


def _plot(summary: list[dict], path: Path, title: str, against: str = "exact greedy") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for s in summary:
        fam = s["method"].split("-")[0]
        color = {"one": "tab:gray", "refresh": "tab:blue", "stride": "tab:orange", "budget": "tab:green",
                 "exact": "black"}.get(fam, "tab:red")
        ax.errorbar([s["share"]], [s["spearman"]], yerr=[[s["spearman"] - s["ci"][0]], [s["ci"][1] - s["spearman"]]],
                    fmt="o", color=color, capsize=3)
        ax.annotate(s["method"], (s["share"], s["spearman"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("LM tokens / exact search's LM tokens (log)")
    ax.set_ylabel(f"mean per-chain Spearman with {against}")
    ax.set_title(title[:90], fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(path)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
