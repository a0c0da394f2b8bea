"""Chains per hour of `label` and `predict`: the local loop vs `--engine ray` with 1 and 2 workers.

Same chains, same process, interleaved repeats (median of --repeats per engine). The LM is a tiny
random Llama (2 layers, hidden 32, float32) with the embedded SmolLM2 tokenizer, so the numbers show
the engine's overhead, not an LM's speed; the chains are GSM8K chains of the shipped data with their
reasoning cut to --words words. The Ray cluster (num_cpus = --cpus) is started once and reused; its
start-up time is reported on its own. Each run includes loading the LM (the local loop once, each
Ray actor once). `predict` also runs on --big-chains chains: the growth of a run's time from
--chains to --big-chains chains, minus the local loop's, is Ray's overhead per chain; the rest of
the difference to the local loop is a fixed cost per run (actors start and load the LM, the
pipeline starts and ends).

    python benchmarks/ray_engine.py --chains 16 --big-chains 128 --words 12 --repeats 3
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def tiny_model_dir(path: Path) -> str:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from predictor.lm import _resolve

    tok = AutoTokenizer.from_pretrained(_resolve(None)[1])
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def chains_file(data: str, n: int, words: int, path: Path) -> str:
    from predictor.ranked import read_ranked

    recs = read_ranked(data, objective="joint")[:n]
    path.write_text("".join(json.dumps({"id": r["id"], "question": r["question"], "answer": r["answer"],
                                        "reasoning": " ".join(r["reasoning"].split()[:words])}) + "\n"
                            for r in recs))
    return str(path)


def timed_run(argv: list[str]) -> float:
    from predictor.cli import main

    t = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()) as err:
        rc = main(argv)
    if rc != 0:
        raise RuntimeError(f"{argv}: exit {rc}\n{err.getvalue()[-2000:]}")
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/ranked/gsm8k-smollm2-joint.jsonl")
    ap.add_argument("--chains", type=int, default=16)
    ap.add_argument("--words", type=int, default=12, help="reasoning cut to this many words")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=2, help="logical CPUs of the local Ray cluster")
    ap.add_argument("--niceness", type=int, default=0, help="niceness of Ray's workers (Ray's default: 15)")
    ap.add_argument("--big-chains", type=int, default=128, help="second, larger run of `predict`")
    args = ap.parse_args(argv)

    import os

    import ray

    # Ray starts its workers at niceness 15; on a machine shared with other jobs that alone would slow
    # the actors against the local loop (niceness 0). Compare like with like unless told otherwise.
    os.environ.setdefault("RAY_worker_niceness", str(args.niceness))
    tmp = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    model = tiny_model_dir(tmp / "tiny")
    files = {n: chains_file(args.data, n, args.words, tmp / f"chains-{n}.jsonl") for n in (args.chains, args.big_chains)}
    t = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - t
    engines = {"local": [], "ray, 1 worker": ["--engine", "ray", "--workers", "1"],
               "ray, 2 workers": ["--engine", "ray", "--workers", "2"]}
    extra = {"label": [], "predict": ["--scorer", "surprisal"]}
    print(f"GSM8K chains ({args.words}-word reasoning), tiny random Llama (float32), 1 torch thread per "
          f"process; Ray cluster with {args.cpus} CPUs started in {start_s:.1f} s; median of {args.repeats}\n")
    print("| command | engine | s per run | chains per hour | speed vs local | (run - local) s per chain |")
    print("|---|---|---|---|---|---|")
    k = 0
    medians = {}
    for cmd, n in (("label", args.chains), ("predict", args.chains), ("predict", args.big_chains)):
        times = {e: [] for e in engines}
        for _ in range(args.repeats):
            for name, opts in engines.items():
                k += 1
                out = tmp / f"out-{k}.jsonl"
                times[name].append(timed_run([cmd, "--in", files[n], "--out", str(out), "--model", model,
                                              "--threads", "1", *extra[cmd], *opts]))
        local = statistics.median(times["local"])
        for name in engines:
            m = medians[cmd, n, name] = statistics.median(times[name])
            over = "" if name == "local" else f"{(m - local) / n:+.2f}"
            print(f"| {cmd} ({n} chains) | {name} | {m:.1f} | {3600 * n / m:.0f} | {local / m:.2f} | {over} |",
                  flush=True)
    print("\nRay overhead per chain (predict, from the growth between the two sizes) and fixed cost per run:\n")
    print("| engine | overhead s per chain | fixed s per run |\n|---|---|---|")
    dn = args.big_chains - args.chains
    small, big = args.chains, args.big_chains
    slope_local = (medians["predict", big, "local"] - medians["predict", small, "local"]) / dn
    for name in list(engines)[1:]:
        slope = (medians["predict", big, name] - medians["predict", small, name]) / dn - slope_local
        fixed = medians["predict", small, name] - medians["predict", small, "local"] - slope * small
        print(f"| {name} | {slope:+.4f} | {fixed:.1f} |")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
