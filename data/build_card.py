"""Regenerate the data card (data/README.md) and its length histogram from the ranked files.

    python data/build_card.py
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from predictor.jsonl_io import atomic_write_text  # noqa: E402
from predictor.ranked import read_ranked  # noqa: E402

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

- LM: the embedded SmolLM2-135M-Instruct (Q4_1 GGUF dequantized to float32), fingerprint `{lm}`.
- Exact greedy search (stride 1), default scoring layout of the design card; each record holds ids,
  decoded tokens, the full deletion `order`, `ranks` (1 = deleted first), the objective `trajectory`
  after each deletion, `full_objective` and the search's wall time `seconds`.
- Labeled with (two JOINT shards and one ANSWER process in parallel, one CPU thread each, on a 2-core
  machine shared with other work, so the seconds are inflated by contention):
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
- Tokens/s counts reasoning tokens ranked per second of search, per process.
- Validate every record (schema, ranks a permutation consistent with `order`, unique ids,
  trajectory length = n): `predictor check-data data/ranked/*.jsonl` (also run by the test suite).
- Regenerate this card: `python data/build_card.py`.

![reasoning length histogram](ranked/lengths.png)
"""


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    queue = sum(1 for line in (HERE / "chains" / "gsm8k-train-20-64.jsonl").open() if line.strip())
    rows, lms, hist = [], set(), {}
    for path in sorted((HERE / "ranked").glob("*.jsonl")):
        recs = read_ranked(path)
        if not recs:
            continue
        ns = [len(r["order"]) for r in recs]
        secs = [r["seconds"] for r in recs]
        lms |= {r["lm"] for r in recs}
        obj = recs[0]["objective"]
        hist[obj] = ns
        rows.append(f"| `{path.name}` | {obj} | {len(recs)} | {sum(ns)} | {min(ns)} / {int(statistics.median(ns))} / "
                    f"{max(ns)} | {sum(secs) / 3600:.2f} h | {statistics.median(secs):.0f} | {sum(ns) / sum(secs):.2f} |")
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(list(hist.values()), bins=range(20, 66, 4), label=list(hist.keys()))
    ax.set_xlabel("reasoning tokens per chain")
    ax.set_ylabel("chains")
    ax.set_title("Ranked GSM8K chains by length")
    ax.legend()
    fig.tight_layout()
    fig.savefig(HERE / "ranked" / "lengths.png", dpi=110)
    card = CARD.format(n_queue=f"{queue:,}", rows="\n".join(rows), lm=", ".join(sorted(lms)))
    atomic_write_text(HERE / "README.md", card)
    print(f"wrote {HERE / 'README.md'}")


if __name__ == "__main__":
    main()
