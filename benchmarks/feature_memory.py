"""Peak memory of feature extraction vs a plain eager forward pass, as chains and models grow.

Each measurement runs in a fresh subprocess on a tiny random Llama (hidden 64, 4 heads, the embedded
LM's 49k-token vocabulary, float32, 1 thread): warm up on a short chain, reset the resident
high-water mark (/proc/self/clear_refs), run once on a chain of T reasoning tokens and read it again
(VmHWM; ru_maxrss where /proc is missing). The table shows the increase in MiB: the peak working
memory of that one call beyond the loaded model. glibc's mmap threshold is fixed so that freed large
buffers leave the resident set (--raw-malloc keeps the default, which adds fragmentation noise). Modes:
    plain      model(ids) with eager attention (full logits, no attention returned)
    stack      the eager decoder stack alone (hidden states, no logits): the strictest reference
    features   extract_features(lm, chain): one eager pass with per-layer hooks, all default groups
    all_maps   model(ids, output_attentions=True): every layer's T x T maps held at once (what we avoid)

    python benchmarks/feature_memory.py                      # memory table (layers 2 and 8, T 256..2048)
    python benchmarks/feature_memory.py --speed 5            # seconds per chain, embedded LM, real chains
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time


def _tiny(layers: int):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from predictor.lm import _resolve, wrap_lm

    tok = AutoTokenizer.from_pretrained(_resolve(None)[1])
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      eos_token_id=tok.eos_token_id, attn_implementation="sdpa")
    return wrap_lm(LlamaForCausalLM(cfg).float(), tok, name=f"tiny-{layers}")


def _chain(tok, n: int) -> dict:
    ids = tok(" Tom has 3 apples and buys 4 more, so 3 + 4 = 7 apples.\n" * (n // 10 + 1),
              add_special_tokens=False)["input_ids"][:n]
    return {"id": f"len{n}", "question": "How many apples?", "reasoning": tok.decode(ids).strip(), "answer": "7"}


def _run(lm, mode: str, chain: dict) -> int:
    import torch

    from predictor.features import extract_features
    from predictor.layout import encode_chain
    from predictor.chains import as_chain
    from predictor.lm import base_and_head
    from predictor.observe import eager_attention

    if mode == "features":
        return extract_features(lm, chain).n
    lay = encode_chain(lm.tokenizer, as_chain(chain))
    x = torch.tensor([lay.sequence()])
    with torch.no_grad(), eager_attention(lm.model):
        if mode == "stack":
            out = base_and_head(lm.model)[0](input_ids=x, use_cache=False)
        else:
            out = lm.model(input_ids=x, use_cache=False, output_attentions=(mode == "all_maps"))
    del out
    return lay.n


def worker(mode: str, layers: int, tokens: int) -> None:
    import torch

    torch.set_num_threads(1)
    lm = _tiny(layers)
    _run(lm, mode, _chain(lm.tokenizer, 32))  # warm-up: lazy imports, allocator pools
    chain = _chain(lm.tokenizer, tokens)
    before = _reset_peak()
    t = time.perf_counter()
    n = _run(lm, mode, chain)
    secs = time.perf_counter() - t
    print(json.dumps({"n": n, "peak_mib": (_peak() - before) / 1024, "seconds": secs}))


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{key}:\s+(\d+)", f.read(), re.M).group(1))


def _reset_peak() -> int:
    """Reset the resident high-water mark (Linux: VmHWM := VmRSS) and return the current RSS in KiB.

    Without the reset the model's construction, not the measured call, would set the peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmRSS")
    except OSError:  # not Linux: fall back to the lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak() -> int:
    try:
        return _status_kib("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def measure(mode: str, layers: int, tokens: int, raw_malloc: bool = False) -> dict:
    # A fixed mmap threshold makes glibc return every large freed buffer to the OS, so ru_maxrss tracks the
    # peak of live tensors rather than heap fragmentation (which otherwise inflates chunked loops several-fold).
    env = dict(os.environ) if raw_malloc else {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, __file__, "--worker", mode, str(layers), str(tokens)],
                         capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_table(layer_list: list[int], lengths: list[int], raw_malloc: bool = False) -> None:
    print("| layers | reasoning tokens | plain eager MiB | stack only MiB | features MiB | features / plain "
          "| features / stack | all maps MiB | features s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for layers in layer_list:
        for T in lengths:
            r = {m: measure(m, layers, T, raw_malloc)["peak_mib"] for m in ("plain", "stack", "all_maps")}
            feat = measure("features", layers, T, raw_malloc)
            p, s, f, a = r["plain"], r["stack"], feat["peak_mib"], r["all_maps"]
            ratio = lambda den: f"{f / den:.2f}x" if den >= 4 else "-"  # below 4 MiB the ratio is noise
            print(f"| {layers} | {feat['n']} | {p:.0f} | {s:.0f} | {f:.0f} | {ratio(p)} | {ratio(s)} | {a:.0f} | "
                  f"{feat['seconds']:.2f} |", flush=True)


def speed(k: int, path: str, model: str | None) -> None:
    import statistics

    import torch

    from predictor.chains import read_chains
    from predictor.features import FeatureSpec, extract_features
    from predictor.lm import load_lm

    torch.set_num_threads(1)
    lm = load_lm(model)
    chains = read_chains(path)[:k]
    extract_features(lm, chains[0])  # warm-up
    rows = []
    for spec in (FeatureSpec(), FeatureSpec(groups=("logits", "position", "lexical"))):
        for c in chains:
            t = time.perf_counter()
            tab = extract_features(lm, c, spec)
            rows.append((",".join(spec.groups), c.id, tab.n, tab.values.shape[1], time.perf_counter() - t))
    print(f"LM {lm.name} ({lm.fingerprint}), {lm.num_layers} layers x {lm.num_heads} heads, 1 thread, float32")
    print("| groups | chain | tokens | columns | seconds |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.2f} |")
    for g in dict.fromkeys(r[0] for r in rows):
        s = [r[4] for r in rows if r[0] == g]
        print(f"{g}: mean {statistics.mean(s):.2f} s/chain over {len(s)} chains")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default="2,8")
    ap.add_argument("--lengths", default="256,512,1024,2048")
    ap.add_argument("--speed", type=int, default=0, help="time K real chains on the embedded LM instead")
    ap.add_argument("--chains", default="data/chains/gsm8k-train-20-64.jsonl")
    ap.add_argument("--model", default=None)
    ap.add_argument("--raw-malloc", action="store_true", help="keep glibc's dynamic mmap threshold (noisier)")
    args = ap.parse_args()
    if args.speed:
        speed(args.speed, args.chains, args.model)
    else:
        memory_table([int(x) for x in args.layers.split(",")], [int(x) for x in args.lengths.split(",")], args.raw_malloc)


if __name__ == "__main__":
    main()
