"""Choose `prune`'s contiguity settings (gap_cost, position_weight) on validation fidelity.

For each chain of a predictor's validation (and optionally test) split and each keep ratio, the kept
set of every configuration (gap_cost, position_weight) of
`predictor.contiguous_selection.select_kept_contiguous` over the predictor's one-pass ranks is
scored with the JOINT and ANSWER objectives (one batched forward per chain and ratio over a shared
prompt cache: every kept set there has the same length), next to greedy's survivors and `draws`
random kept sets (their mean is the random baseline). Fidelity = share of the random-to-greedy
JOINT gap recovered, per chain, then the mean (docs/quality.md §8-§9). The configuration with the
best mean over the keep ratios on validation is selected; only then are test chains scored, with
the selected configuration, plain selection (0, 0) and the suffix (0, 1), and reported with paired
95% bootstrap intervals. `predictor select-prune` is the command.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

RATIOS = (0.9, 0.7, 0.5, 0.3)
GAP_COSTS = (0.0, 1.0, 2.0, 4.0)
POSITION_WEIGHTS = (0.0, 0.25, 0.5, 1.0)


def config_name(gap_cost: float, w: float) -> str:
    return f"gap{gap_cost:g}_pos{w:g}"


def batched_objectives(model, prompt, kept_ids: list[list[int]], answer, prompt_kv=None) -> list[tuple[float, float]]:
    """(JOINT, ANSWER) for each reasoning variant of equal length, one forward pass for all.

    prompt_kv: `layer_kv` of a forward over prompt[:-1] (shared by every variant; computed if None).
    JOINT sums the log-probabilities of reasoning + answer given the prompt; ANSWER the answer's."""
    import torch

    from ..kv_cache import cache_kwargs, prefix_cache
    from ..objective import upcast

    dev = next(model.parameters()).device
    p = len(prompt)
    if prompt_kv is None:
        prompt_kv = prompt_cache(model, prompt)
    with torch.no_grad():
        x = torch.tensor([[prompt[-1]] + list(r) + list(answer) for r in kept_ids], device=dev)
        cache = prefix_cache(prompt_kv, p - 1, len(kept_ids))
        pos = torch.arange(p - 1, p - 1 + x.shape[1], device=dev)[None].expand(len(kept_ids), -1)
        logits = upcast(model(input_ids=x, position_ids=pos, **cache_kwargs(model, cache), use_cache=True).logits)
    lp = torch.log_softmax(logits[:, :-1], dim=-1).gather(2, x[:, 1:, None])[..., 0].double()
    return [(float(row.sum()), float(row[len(row) - len(answer):].sum())) for row in lp]


def prompt_cache(model, prompt):
    """`layer_kv` of one forward over prompt[:-1], for `batched_objectives`."""
    import torch

    from ..kv_cache import layer_kv, output_cache

    with torch.no_grad():
        out = model(input_ids=torch.tensor([list(prompt[:-1])], device=next(model.parameters()).device),
                    use_cache=True)
    return layer_kv(output_cache(out))


def chain_objectives(model, rec, ranks: np.ndarray, configs, ratios, draws: int, seed: int) -> dict:
    from ..pruning import keep_count
    from .fidelity import contiguous_keep_indices, greedy_keep_indices

    rid = list(rec["reasoning_ids"])
    n = len(rid)
    out: dict[str, dict[str, list[float]]] = {}
    rng = np.random.default_rng([seed, int.from_bytes(str(rec["id"]).encode()[:8], "little")])
    kv = prompt_cache(model, rec["prompt_ids"])
    for r in ratios:
        k = keep_count(n, r)
        sets: dict[str, tuple[int, ...]] = {"greedy": tuple(greedy_keep_indices(rec["order"], r))}
        for d in range(draws):
            sets[f"random{d}"] = tuple(sorted(rng.permutation(n)[:k].tolist()))
        for g, w in configs:
            sets[config_name(g, w)] = tuple(contiguous_keep_indices(ranks, r, g, w))
        uniq = sorted(set(sets.values()))
        vals = dict(zip(uniq, batched_objectives(model, rec["prompt_ids"], [[rid[i] for i in s] for s in uniq],
                                                 rec["answer_ids"], kv)))
        for name, s in sets.items():
            e = out.setdefault(name, {"joint": [], "answer": []})
            e["joint"].append(vals[s][0])
            e["answer"].append(vals[s][1])
    for obj in ("joint", "answer"):
        rnd = np.mean([out[f"random{d}"][obj] for d in range(draws)], axis=0)
        out.setdefault("random", {"joint": [], "answer": []})[obj] = rnd.tolist()
    return out


def summarize(rows: list[dict], names: list[str], ratios, objective: str = "joint") -> dict:
    from .fidelity import gap_recovered
    from ..metrics import bootstrap_ci

    grd = np.array([r["obj"]["greedy"][objective] for r in rows])
    rnd = np.array([r["obj"]["random"][objective] for r in rows])
    res = {}
    for name in names:
        vals = np.array([r["obj"][name][objective] for r in rows])
        g = gap_recovered(vals, rnd, grd)  # [chains, ratios]
        per_ratio = [bootstrap_ci(g[:, j]) for j in range(len(ratios))]
        pooled = gap_recovered(vals.mean(0), rnd.mean(0), grd.mean(0))
        res[name] = {"gap": [p[0] for p in per_ratio], "lo": [p[1] for p in per_ratio],
                     "hi": [p[2] for p in per_ratio], "mean": float(np.nanmean([p[0] for p in per_ratio])),
                     "pooled": pooled.tolist(), "per_chain": g.tolist()}
    return res


def paired(res: dict, a: str, b: str, ratios) -> list[tuple[float, float, float]]:
    """Per ratio: mean per-chain gap-recovered difference a - b [95% CI] (chains where both are finite)."""
    from ..metrics import bootstrap_ci

    ga, gb = np.array(res[a]["per_chain"]), np.array(res[b]["per_chain"])
    return [bootstrap_ci(ga[:, j] - gb[:, j]) for j in range(len(ratios))]


def score_split(rp, recs: dict, ids: list[str], split_name: str, configs, path: Path, draws: int = 3, seed: int = 0,
                batch: int = 8) -> list[dict]:
    """Objective rows of one split's chains (resumed from `path`, new rows appended), in `ids` order.

    A row: {"split", "id", "n", "obj": `chain_objectives` of the predictor's one-pass ranks}."""
    from ..jsonl_io import OutputRecords, ResumableJsonlWriter
    from ..ranked import record_chain

    names = {config_name(g, w) for g, w in configs}
    # the writer cuts off a line a killed run left half-written; a row scored with fewer settings is redone
    with ResumableJsonlWriter(path, key=("split", "id")) as writer:
        done = {row["id"]: row for _, row in OutputRecords(path, required=("split", "id", "obj"))
                if row["split"] == split_name and names <= set(row["obj"])}
        todo = [cid for cid in ids if cid in recs and cid not in done]
        print(f"{split_name}: {len(done)} chains done, {len(todo)} to score", file=sys.stderr)
        t0 = time.time()
        for i in range(0, len(todo), batch):
            chunk = todo[i:i + batch]
            ranks = rp.predict_ranks([record_chain(recs[c]) for c in chunk])
            for cid, rk in zip(chunk, ranks):
                obj = chain_objectives(rp.lm.model, recs[cid], np.asarray(rk), configs, RATIOS, draws, seed)
                row = {"split": split_name, "id": cid, "n": len(rk), "obj": obj}
                writer.write(row)
                done[cid] = row
            el, k = time.time() - t0, i + len(chunk)
            print(f"{split_name}: {k}/{len(todo)} chains, {el:.0f} s, ETA {el / k * (len(todo) - k):.0f} s",
                  file=sys.stderr)
    return [done[c] for c in ids if c in done]


def write_defaults(predictor_dir: str | Path | None, summary: dict) -> Path:
    """Store the validation-selected contiguity settings as the predictor's `prune` defaults."""
    from ..jsonl_io import atomic_write_text
    from ..predictor_dir import pretrained_dir

    meta_path = Path(predictor_dir or pretrained_dir()) / "predictor.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    g, w = summary["selected_config"]
    val = summary["splits"]["val"]
    meta["prune"] = {"gap_cost": float(g), "position_weight": float(w),
                     "selected_on": f"validation split ({val['n_chains']} chains): mean share of the random-to-greedy "
                                    "JOINT gap recovered over keep ratios " + ", ".join(map(str, RATIOS)),
                     "validation_gap_recovered": val["joint"][summary["selected"]]["gap"],
                     "command": "predictor select-prune --write"}
    atomic_write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True))
    print(f"wrote prune defaults gap_cost={g:g} position_weight={w:g} to {meta_path}", file=sys.stderr)
    return meta_path


def select_prune(rp, records: list[dict], split: dict[str, list[str]], out_dir: str | Path,
                 configs: list[tuple[float, float]] | None = None, test: bool = False, draws: int = 3,
                 seed: int = 0) -> dict:
    """Score the grid on split["val"], select, then (test=True) score split["test"] with the selected,
    plain and suffix settings. Rows resume from OUT/objectives.jsonl.

    Returns {"ratios", "configs", "selected", "selected_config": (gap_cost, position_weight),
    "splits": {name: {"n_chains", "joint": `summarize`, "answer": `summarize`}}}.
    Raises ValueError when no validation chain of the split is in `records`.
    """
    configs = configs or [(g, w) for g in GAP_COSTS for w in POSITION_WEIGHTS]
    names = [config_name(g, w) for g, w in configs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "objectives.jsonl"
    recs = {str(r["id"]): r for r in records}
    if not any(c in recs for c in split.get("val", [])):
        raise ValueError("none of the predictor's validation chains is in the ranked data (is it the file the "
                         "predictor was trained on?)")
    summary: dict = {"ratios": list(RATIOS), "configs": names, "splits": {}}
    for s in ["val"] + (["test"] if test else []):
        cfg = configs if s == "val" else list(dict.fromkeys([(0.0, 0.0), (0.0, 1.0), summary["selected_config"]]))
        rows = score_split(rp, recs, split[s], s, cfg, path, draws, seed)
        cfg_names = [config_name(g, w) for g, w in cfg]
        summary["splits"][s] = {"n_chains": len(rows), "joint": summarize(rows, cfg_names + ["greedy"], RATIOS),
                                "answer": summarize(rows, cfg_names + ["greedy"], RATIOS, "answer")}
        if s == "val":
            val = summary["splits"]["val"]["joint"]
            summary["selected"] = max(names, key=lambda m: val[m]["mean"])
            summary["selected_config"] = next(c for c in configs if config_name(*c) == summary["selected"])
    return summary


def render_markdown(summary: dict) -> str:
    """The tables of a `select_prune` summary (validation: every setting; test: the three)."""
    best = summary["selected"]
    base, pos = config_name(0.0, 0.0), config_name(0.0, 1.0)
    lines = [f"Selected on validation (mean share of the random-to-greedy JOINT gap over keep "
             f"{', '.join(map(str, RATIOS))}): **{best}**", ""]
    for s, part in summary["splits"].items():
        res, ans = part["joint"], part["answer"]
        names = [m for m in res if m != "greedy"]
        lines += [f"### {s} ({part['n_chains']} chains): JOINT gap recovered per keep ratio "
                  "[95% CI]; their mean; ANSWER: the same share on the chain-mean ANSWER objectives (pooled; per-chain "
                  "ANSWER gaps are often near zero), per ratio", "",
                  "| selection | " + " | ".join(f"r = {r}" for r in RATIOS) + " | mean | ANSWER, pooled |",
                  "|---|" + "---|" * (len(RATIOS) + 2)]
        show = [base, pos, best] if s == "test" else sorted(names, key=lambda m: -res[m]["mean"])
        for m in dict.fromkeys(show):
            if m not in res:
                continue
            cells = [f"{res[m]['gap'][j]:.3f} [{res[m]['lo'][j]:.3f}, {res[m]['hi'][j]:.3f}]" for j in range(len(RATIOS))]
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {res[m]['mean']:.3f} | "
                         + " / ".join(f"{x:.2f}" for x in ans[m]["pooled"]) + " |")
        for other in (base, pos):
            if other != best and other in res and best in res:
                d = paired(res, best, other, RATIOS)
                lines += ["", f"{s}: {best} - {other}, paired: " + ", ".join(
                    f"r = {r}: {m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for r, (m, lo, hi) in zip(RATIOS, d))]
        lines.append("")
    return "\n".join(lines) + "\n"
