"""One device run for issue 28 item 5: batched predict_ranks, labeling throughput, long-chain labels.

Runs three parts in one process, each guarded by a time budget, and writes OUT/gpu_run.json and
OUT/gpu_run.md (rewritten after every measured row, so a run cut short still leaves its rows):

a. predict_ranks, batched against one chain at a time. The shipped predictor
   (predictor/pretrained/smollm2-joint, --predictor) ranks --predict-chains chains of each length of
   --predict-lengths reasoning tokens, once as one list (`rp.predict_ranks(chains)`, batched forward
   passes) and once in a loop (`[rp.predict_ranks(c) for c in chains]`). One warm-up call of each, then
   --repeats timed rounds that alternate the two (medians; torch.cuda.synchronize around every timing).
   Reports chains/s, the speed-up (the issue's target: >= 10x on a GPU), whether both give the same
   ranks, and the peak GPU memory of each. Chains of a length: GSM8K reasonings (--chains) joined and
   cut to exactly that many tokens, under the question and answer of the first; each chain of a
   length starts at another record, so the chains of a batch differ.
b. Labeling throughput: the exact greedy search (`greedy_layout(lm, lay, SearchOptions())`, what
   `predictor label` runs) and the approximate search (`approximate_greedy_layout(..., budget=F)`; mode
   "budget": shortlists proposed by the predictor of part a, as `label --budget F` runs it; mode
   "lazy": without a proposer, `label --budget F --proposer none`) on one chain of each length of
   --label-lengths: seconds per chain, the LM tokens the search ran (`lm_tokens`) and LM tokens per
   second. A length is skipped when its time, extrapolated from the last length by the search's cost
   (`search_cost`, ~n^3/6 + n^2 a/2), would not fit in the time left.
c. Long chains labeled: with real weights (--model DIR, a converted model directory), runs
   `predictor label` (exact, JOINT) in --label-procs processes sharing the device (`--shard i/K`) on
   the queue --label-in (minus the ids of --label-exclude and those already labeled in --label-dir),
   shortest first, until the budget ends. Rounds are planned from the measured speed (part b's exact
   rows, then the last round's records) so that no process starts a chain it cannot finish; a round
   still running at the end is interrupted (SIGINT: finished records are kept, the chain in progress
   is lost). Parts go to --label-dir (resumable: a second run with the same directory skips what is
   done); all of them are merged into OUT/labeled.jsonl, and the processes' output into OUT/label.log.
   Without --model this part is skipped (random weights would make meaningless labels); with --smoke
   and no --model it labels two short chains with a tiny random LM, to test the machinery only.

Weights: the GPU machine cannot receive the embedded LM's 94 MB GGUF, so unless --model is given the
LM is built from --model-config (config.json + tokenizer files only) with random weights (seed 0).
The search's and the observation pass's cost per LM token do not depend on the weights' values
(same shapes, same kernels; on CUDA the exact search has no data-dependent bound, it scores every
candidate), so parts a and b time what the real LM would; the ranks themselves are meaningless then,
and the predictor's LM check is off. (On CPU the exact search's bound does depend on the weights:
its lm_tokens there are not the real LM's.)

    python benchmarks/device/gpu_run.py --out $OUT --budget-seconds 400              # on the GPU machine
    OMP_NUM_THREADS=1 python benchmarks/device/gpu_run.py --smoke --device cpu \\
        --model-config .device/model-config --out /tmp/gpu_smoke                     # the CPU test

See benchmarks/device/README.md for the device call (wheels, carry list) and the checks afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

DEFAULT_PREDICTOR = REPO / "predictor" / "pretrained" / "smollm2-joint"
DEFAULT_CHAINS = REPO / "data" / "chains" / "gsm8k-train-100-250.jsonl"
SHORT_CHAINS = REPO / "data" / "chains" / "gsm8k-train-20-64.jsonl"
DEVICE_DIR = REPO / ".device"
EMBEDDED_CACHE = Path(os.environ.get("PREDICTOR_CACHE", Path.home() / ".cache" / "predictor")) / "models" / \
    "SmolLM2-135M-Instruct.Q4_1"
DEFAULT_EXCLUDE = [REPO / "data" / "ranked" / "long" / "gsm8k-smollm2-joint.jsonl", DEVICE_DIR / "labeled-ids.txt"]
LABEL_MODES = ("exact", "budget", "lazy")
FINISH_MARGIN_S = 15.0  # kept at the end of the budget for the last merge and the output files


# --- arguments ------------------------------------------------------------------------------------
def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _modes(text: str) -> list[str]:
    modes = [x.strip() for x in text.split(",") if x.strip()]
    bad = [m for m in modes if m not in LABEL_MODES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown mode(s) {bad}; choose from {', '.join(LABEL_MODES)}")
    return modes


def _parts(text: str) -> set[str]:
    parts = {x.strip() for x in text.split(",") if x.strip()}
    if not parts <= {"a", "b", "c"}:
        raise argparse.ArgumentTypeError(f"parts are a, b, c; got {text!r}")
    return parts


def default_model() -> str | None:
    """.device/model when it holds a model with weights (config.json + *.safetensors), else None."""
    d = DEVICE_DIR / "model"
    return str(d) if (d / "config.json").is_file() and any(d.glob("*.safetensors")) else None


def default_model_config() -> Path:
    """.device/model-config (what prepare.sh copies) if present, else the embedded LM's converted cache."""
    return DEVICE_DIR / "model-config" if (DEVICE_DIR / "model-config" / "config.json").is_file() else EMBEDDED_CACHE


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="output folder (gpu_run.json, gpu_run.md, labeled.jsonl, "
                   "label.log); created if missing")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes for a CPU test (lengths 20,40 / 6,10, 3 chains, 1 repeat, budget 150 s); "
                        "explicit options still win")
    p.add_argument("--budget-seconds", type=float, default=None,
                   help="stop starting new work after this many seconds from the start (default 400; smoke 150)")
    p.add_argument("--parts", type=_parts, default={"a", "b", "c"}, help="which parts to run (default a,b,c)")
    p.add_argument("--model-config", type=Path, default=None,
                   help="folder with config.json + tokenizer files: the LM is built from it with random weights "
                        "(default: .device/model-config if present, else the embedded LM's cache folder "
                        f"{EMBEDDED_CACHE})")
    p.add_argument("--model", default=None,
                   help="a model folder with real weights (or any name load_lm accepts): used by every part "
                        "instead of random weights, and required for part c (else skipped). Default: .device/model "
                        "if it holds weights (config.json + *.safetensors; not with --smoke), else none")
    p.add_argument("--predictor", default=str(DEFAULT_PREDICTOR),
                   help="predictor directory or shipped name for part a and the 'budget' proposer "
                        "(default: predictor/pretrained/smollm2-joint)")
    p.add_argument("--dtype", default="float32", help="LM dtype (default float32, as the labeler)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; 1 with --smoke)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--chains", type=Path, default=DEFAULT_CHAINS,
                   help="chains JSONL whose reasonings make the synthetic chains of parts a and b")
    g = p.add_argument_group("part a: predict_ranks")
    g.add_argument("--predict-lengths", type=_ints, default=None, help="reasoning tokens (default 50,150,500,1000)")
    g.add_argument("--predict-chains", type=int, default=None, help="chains per length (default 32)")
    g.add_argument("--repeats", type=int, default=None, help="timed rounds after the warm-up (default 3)")
    g.add_argument("--predict-seconds", type=float, default=None,
                   help="no new length after this many seconds of part a (default 150; smoke 90)")
    g = p.add_argument_group("part b: labeling throughput")
    g.add_argument("--label-lengths", type=_ints, default=None, help="reasoning tokens (default 32,64,128,250)")
    g.add_argument("--label-modes", type=_modes, default=list(LABEL_MODES),
                   help="searches to time: exact, budget (proposer = the predictor), lazy (default all)")
    g.add_argument("--approx-budget", type=float, default=0.1, help="the approximate searches' budget F (default 0.1)")
    g = p.add_argument_group("part c: long chains labeled")
    g.add_argument("--label-in", type=Path, default=None,
                   help=f"chains to label (default {DEFAULT_CHAINS.relative_to(REPO)}; smoke: "
                        f"{SHORT_CHAINS.relative_to(REPO)})")
    g.add_argument("--label-exclude", type=Path, nargs="*", default=None,
                   help="ranked JSONL files or id lists (.txt, one a line) whose ids are not labeled "
                        "(default: data/ranked/long/gsm8k-smollm2-joint.jsonl and .device/labeled-ids.txt, "
                        "where present; exact labels only for ranked files)")
    g.add_argument("--label-split", choices=["all", "train", "val", "test"], default="all",
                   help="label only this split of the input (predictor.splits.split_ids; default all)")
    g.add_argument("--label-order", choices=["shortest", "longest"], default="shortest",
                   help="queue order by reasoning tokens (default shortest first: most labels per second)")
    g.add_argument("--label-max-tokens", type=int, default=None, help="skip longer chains (default 250; smoke 24)")
    g.add_argument("--label-limit", type=int, default=None, help="at most this many chains (default all; smoke 2)")
    g.add_argument("--label-procs", type=int, default=None,
                   help="label processes sharing the device (default 4 on cuda, 1 on cpu; smoke 2)")
    g.add_argument("--label-batch-tokens", type=int, default=None,
                   help="--batch-tokens of each label process (default: auto for one process, 16384 for several)")
    g.add_argument("--label-dir", type=Path, default=None,
                   help="where the processes' part files and queues live (default: TMPDIR/gpu_run_label, kept "
                        "between calls while the machine is warm, so a rerun resumes; smoke: a temporary folder, "
                        "removed at the end)")
    g.add_argument("--label-seconds", type=float, default=None,
                   help="seconds kept for part c when it runs: parts a and b stop earlier (default 200; smoke 40)")
    return p


def settle(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the defaults that depend on --smoke and --device."""
    smoke = args.smoke
    cuda = str(args.device).startswith("cuda")
    defaults = {
        "budget_seconds": 150.0 if smoke else 400.0,
        "predict_lengths": [20, 40] if smoke else [50, 150, 500, 1000],
        "predict_chains": 3 if smoke else 32,
        "repeats": 1 if smoke else 3,
        "predict_seconds": 90.0 if smoke else 150.0,
        "label_lengths": [6, 10] if smoke else [32, 64, 128, 250],
        "label_in": SHORT_CHAINS if smoke else DEFAULT_CHAINS,
        "label_max_tokens": 24 if smoke else 250,
        "label_limit": 2 if smoke else None,
        "label_procs": 2 if smoke else (4 if cuda else 1),
        "label_seconds": 40.0 if smoke else 200.0,
        "threads": 1 if smoke else None,
        "label_dir": None if smoke else Path(tempfile.gettempdir()) / "gpu_run_label",
        "model_config": default_model_config(),
    }
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.model is None and not smoke:
        args.model = default_model()
    if args.label_exclude is None:
        args.label_exclude = [p for p in DEFAULT_EXCLUDE if p.exists()]
    if args.label_batch_tokens is None and args.label_procs > 1 and cuda:
        args.label_batch_tokens = 16384
    return args


# --- time -----------------------------------------------------------------------------------------
class Clock:
    """Seconds since the start and what is left of the budget."""

    def __init__(self, budget: float):
        self.start = time.perf_counter()
        self.budget = float(budget)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self, reserve: float = 0.0) -> float:
        """Seconds until the budget's end minus `reserve`."""
        return self.budget - reserve - self.elapsed()


def syncer(device: torch.device) -> Callable[[], None]:
    """torch.cuda.synchronize on a CUDA device, else a no-op."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def timed(fn: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, Any]:
    """(seconds, result) of fn(), the device synchronized before and after."""
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t, out


# --- environment and LM ---------------------------------------------------------------------------
def import_lightgbm() -> str:
    """Import lightgbm (the shipped predictor's regressors); if its OpenMP runtime is missing, preload
    .device/lib/libgomp.so.1 (prepare.sh copies it) and retry. Returns how it went."""
    try:
        import lightgbm  # noqa: F401

        return f"lightgbm {lightgbm.__version__}"
    except OSError as first:
        gomp = DEVICE_DIR / "lib" / "libgomp.so.1"
        if not gomp.is_file():
            raise
        import ctypes

        ctypes.CDLL(str(gomp), mode=ctypes.RTLD_GLOBAL)
        import lightgbm  # noqa: F401

        return f"lightgbm {lightgbm.__version__} (after preloading {gomp.relative_to(REPO)}: {first})"


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and the device's name."""
    import transformers

    env: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "transformers": transformers.__version__,
                           "transformers_path": str(Path(transformers.__file__).parent), "numpy": np.__version__}
    for name in ("tokenizers", "huggingface_hub", "scipy", "sklearn"):
        try:
            env[name] = __import__(name).__version__
        except ImportError as e:
            env[name] = f"missing ({e})"
    try:
        env["lightgbm"] = import_lightgbm()
    except (ImportError, OSError) as e:
        env["lightgbm"] = f"missing ({e})"
    if device.type == "cuda":
        prop = torch.cuda.get_device_properties(device)
        env["device_name"] = prop.name
        env["device_memory_gib"] = round(prop.total_memory / 2 ** 30, 1)
        env["cuda"] = torch.version.cuda
    else:
        info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
        model = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")),
                     platform.processor() or "cpu")
        env["device_name"] = f"CPU: {model}, {torch.get_num_threads()} torch thread(s)"
    env["cpu_count"] = os.cpu_count()
    return env


def random_lm(config_dir: Path, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """An LM of `config_dir`'s architecture and tokenizer with random weights (seed), on `device`."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from predictor.lm import wrap_lm

    cfg = AutoConfig.from_pretrained(config_dir)
    tok = AutoTokenizer.from_pretrained(config_dir)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    return wrap_lm(model, tok, name=f"random-{config_dir.name}")


def tiny_model_dir(tokenizer_dir: Path, target: Path, seed: int = 0) -> Path:
    """A tiny random Llama (2 layers, width 32) with `tokenizer_dir`'s tokenizer, saved at `target` (for the
    smoke test of part c only)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for prm in model.parameters():
            prm.mul_(8.0 if prm.ndim > 1 else 1.0)  # far from uniform: fewer ties, as tests/conftest.py
    model.save_pretrained(target)
    tok.save_pretrained(target)
    return target


# --- chains ---------------------------------------------------------------------------------------
def chain_of_length(tokenizer, chains: list, n: int, start: int = 0, max_length: int | None = None):
    """A chain whose reasoning is n tokens: the reasonings of chains[start], chains[start + 1], ... joined
    by newlines and cut, under chains[start]'s question and answer. Decoding then encoding can merge
    tokens at the cut, so a few cuts are tried; returns the closest when none gives exactly n."""
    from predictor.chains import Chain
    from predictor.layout import encode_chain

    first = chains[start % len(chains)]
    parts: list[str] = []
    ids: list[int] = []
    i = start
    while len(ids) < n + 8:
        parts.append(chains[i % len(chains)].reasoning)
        ids = tokenizer("\n".join(parts), add_special_tokens=False)["input_ids"]
        i += 1
        if i - start > len(chains) + n:
            raise RuntimeError("the chains' reasonings are too short to build the requested length")
    best = None
    for cut in (*range(n, n + 8), *range(n - 1, max(0, n - 8), -1)):
        chain = Chain(first.question, tokenizer.decode(ids[:cut]).strip(), first.answer, f"len{n}-{start}")
        got = encode_chain(tokenizer, chain, max_length).n
        if got == n:
            return chain
        if best is None or abs(got - n) < abs(best[0] - n):
            best = (got, chain)
    return best[1]


# --- part a -----------------------------------------------------------------------------------------
def measure_predict(rp, chains: list, repeats: int, sync: Callable[[], None], device: torch.device) -> dict[str, Any]:
    """Batched vs one-at-a-time predict_ranks on `chains`: medians of `repeats` alternating rounds after
    one warm-up of each; same ranks?; peak device memory of each mode (CUDA)."""
    from predictor.layout import encode_chain

    def single() -> list:
        return [rp.predict_ranks(c) for c in chains]

    def batched() -> list:
        return rp.predict_ranks(chains)

    cuda = device.type == "cuda"
    timed(single, sync)  # warm-up of both modes
    timed(batched, sync)
    times: dict[str, list[float]] = {"single": [], "batched": []}
    peaks: dict[str, int] = {}
    out: dict[str, list] = {}
    for _ in range(max(1, repeats)):
        for mode, fn in (("single", single), ("batched", batched)):
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            secs, ranks = timed(fn, sync)
            times[mode].append(secs)
            out[mode] = ranks
            if cuda:
                peaks[mode] = max(peaks.get(mode, 0), torch.cuda.max_memory_allocated(device))
    same = sum(bool(np.array_equal(a, b)) for a, b in zip(out["single"], out["batched"]))
    diff = max(int(np.abs(np.asarray(a) - np.asarray(b)).max()) if len(a) else 0
               for a, b in zip(out["single"], out["batched"]))
    lays = [encode_chain(rp.lm.tokenizer, c, rp.lm.max_length) for c in chains]
    ts, tb = statistics.median(times["single"]), statistics.median(times["batched"])
    row = {"reasoning_tokens": int(statistics.median(lay.n for lay in lays)),
           "reasoning_tokens_range": [min(lay.n for lay in lays), max(lay.n for lay in lays)],
           "sequence_tokens": int(statistics.median(lay.total for lay in lays)), "chains": len(chains),
           "repeats": max(1, repeats), "single_s": ts, "batched_s": tb, "single_s_all": times["single"],
           "batched_s_all": times["batched"], "single_chains_per_s": len(chains) / ts,
           "batched_chains_per_s": len(chains) / tb, "speedup": ts / tb, "same_ranks": same,
           "max_rank_diff": diff}
    if cuda:
        row["single_peak_mib"] = peaks["single"] / 2 ** 20
        row["batched_peak_mib"] = peaks["batched"] / 2 ** 20
    return row


def part_predict(args, rp, pool: list, clock: Clock, reserve: float, save: Callable[[], None],
                 result: dict) -> None:
    """Part a: one row per length (see the module doc), skipping lengths that would not fit."""
    sync = syncer(rp.lm.device)
    part = result["predict"] = {"rows": [], "skipped": [], "predictor": str(args.predictor),
                                "target_speedup": 10.0}
    start = clock.elapsed()
    last: tuple[int, float] | None = None
    for n in args.predict_lengths:
        spent = clock.elapsed() - start
        left = min(args.predict_seconds - spent, clock.left(reserve))
        # a length costs about (n / last n) x the last one's wall time (one pass per chain; linear at these
        # lengths to first order)
        est = None if last is None else last[1] * n / last[0]
        if left <= 0 or (est is not None and est > left):
            part["skipped"].append({"reasoning_tokens": n, "why": f"{left:.0f} s left, estimated {est or 0:.0f} s"})
            print(f"[a] skip length {n}: {left:.0f} s left, estimated {est or 0:.0f} s", flush=True)
            continue
        chains = [chain_of_length(rp.lm.tokenizer, pool, n, start=i, max_length=rp.lm.max_length)
                  for i in range(args.predict_chains)]
        t = time.perf_counter()
        row = measure_predict(rp, chains, args.repeats, sync, rp.lm.device)
        last = (n, time.perf_counter() - t)
        part["rows"].append(row)
        print(f"[a] n={row['reasoning_tokens']} x{row['chains']}: one at a time {row['single_s']:.3f} s, "
              f"batched {row['batched_s']:.3f} s, speed-up {row['speedup']:.2f}x, same ranks "
              f"{row['same_ranks']}/{row['chains']}", flush=True)
        save()


# --- part b -----------------------------------------------------------------------------------------
def search_cost(n: int, a: int) -> float:
    """The exact search's token positions for n reasoning and a answer tokens (label's progress unit)."""
    from predictor.engines.label_job import search_cost as cost

    return cost(n, a)


def run_search(mode: str, lm, lay, rp, chain, budget: float):
    """One search of `mode` on layout `lay` (chain: its text, for the proposer)."""
    from predictor.greedy import SearchOptions, greedy_layout
    from predictor.greedy.approximate import approximate_greedy_layout, predictor_proposer

    if mode == "exact":
        return greedy_layout(lm, lay, SearchOptions("joint"))
    if mode == "budget":
        return approximate_greedy_layout(lm, lay, "joint", budget=budget, proposer=predictor_proposer(rp, chain))
    return approximate_greedy_layout(lm, lay, "joint", budget=budget)


def part_label_speed(args, lm, rp, pool: list, clock: Clock, reserve: float, real: bool,
                     save: Callable[[], None], result: dict) -> None:
    """Part b: one row per (length, mode) (see the module doc)."""
    from scipy.stats import spearmanr

    from predictor.greedy import SearchOptions, greedy_layout
    from predictor.layout import encode_chain

    sync = syncer(lm.device)
    modes = [m for m in args.label_modes if m == "exact" or m == "lazy" or rp is not None]
    part = result["label_speed"] = {"rows": [], "skipped": [], "budget": args.approx_budget, "modes": modes}
    if rp is None and "budget" in args.label_modes:
        part["skipped"].append({"mode": "budget", "why": "no predictor for the proposer (part a failed to load it)"})
    warm = chain_of_length(lm.tokenizer, pool, 8, start=0, max_length=lm.max_length)
    wlay = encode_chain(lm.tokenizer, warm, lm.max_length)
    timed(lambda: greedy_layout(lm, wlay, SearchOptions("joint", max_steps=2)), sync)  # kernels, allocator
    last: dict[str, tuple[float, float]] = {}  # mode -> (cost, seconds) of its last row
    for i, n in enumerate(args.label_lengths):
        chain = chain_of_length(lm.tokenizer, pool, n, start=100 + i, max_length=lm.max_length)
        lay = encode_chain(lm.tokenizer, chain, lm.max_length)
        cost = search_cost(lay.n, len(lay.answer_ids))
        exact = None
        for mode in modes:
            left = clock.left(reserve)
            est = None if mode not in last else last[mode][1] * cost / last[mode][0]
            if left <= 0 or (est is not None and est > left):
                why = f"{left:.0f} s left, estimated {est or 0:.0f} s"
                part["skipped"].append({"mode": mode, "reasoning_tokens": lay.n, "why": why})
                print(f"[b] skip {mode} n={lay.n}: {why}", flush=True)
                continue
            secs, res = timed(lambda: run_search(mode, lm, lay, rp, chain, args.approx_budget), sync)
            last[mode] = (cost, secs)
            row = {"mode": mode, "reasoning_tokens": lay.n, "answer_tokens": len(lay.answer_ids),
                   "prompt_tokens": len(lay.prompt_ids), "seconds": secs, "lm_tokens": int(res.lm_tokens or 0),
                   "lm_tokens_per_s": (res.lm_tokens or 0) / secs, "ranked_tokens_per_s": lay.n / secs,
                   "search_cost": cost, "seconds_per_cost": secs / cost}
            if mode == "exact":
                exact = res
            elif exact is not None:
                row["share_of_exact_lm_tokens"] = (res.lm_tokens or 0) / max(1, exact.lm_tokens or 0)
                if real and lay.n > 1:
                    row["spearman_vs_exact"] = float(spearmanr(exact.ranks, res.ranks)[0])
            part["rows"].append(row)
            print(f"[b] {mode} n={lay.n}: {secs:.2f} s, {row['lm_tokens']} LM tokens, "
                  f"{row['lm_tokens_per_s']:.0f} LM tokens/s", flush=True)
            save()


# --- part c -----------------------------------------------------------------------------------------
def excluded_ids(paths: list[Path]) -> set[str]:
    """Ids of exact labels in ranked JSONL files, or of every line of .txt id lists."""
    ids: set[str] = set()
    for path in paths:
        if not path.exists():
            continue
        if path.suffix == ".txt":
            ids.update(ln.strip() for ln in path.read_text().splitlines() if ln.strip())
            continue
        ids.update(labeled_ids(path, exact_only=True))
    return ids


def labeled_ids(path: Path, exact_only: bool = False) -> set[str]:
    """Ids of the complete records of a ranked JSONL file (a line cut by a kill is ignored); with exact_only,
    of those labeled by the exact search (`predictor.ranked.approximate_label` None)."""
    from predictor.ranked import approximate_label

    out: set[str] = set()
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "id" in rec and "order" in rec:
            if exact_only and approximate_label(rec) is not None:
                continue
            out.add(str(rec["id"]))
    return out


def build_queue(args, tokenizer, max_length: int, done: set[str]) -> tuple[list[tuple[Any, int, int]], dict]:
    """The chains part c labels, in order: [(chain, n, answer tokens)], and what was dropped why."""
    from predictor.chains import read_chains
    from predictor.layout import ChainError, encode_chain
    from predictor.splits import split_ids

    chains = read_chains(args.label_in)
    dropped = {"excluded": 0, "done": 0, "other_split": 0, "too_long": 0, "unscorable": 0}
    skip = excluded_ids(list(args.label_exclude))
    split = set(split_ids([c.id for c in chains])[args.label_split]) if args.label_split != "all" else None
    queue = []
    for c in chains:
        if c.id in skip:
            dropped["excluded"] += 1
            continue
        if c.id in done:
            dropped["done"] += 1
            continue
        if split is not None and c.id not in split:
            dropped["other_split"] += 1
            continue
        try:
            lay = encode_chain(tokenizer, c, max_length)
        except ChainError:
            dropped["unscorable"] += 1
            continue
        if lay.n > args.label_max_tokens:
            dropped["too_long"] += 1
            continue
        queue.append((c, lay.n, len(lay.answer_ids)))
    queue.sort(key=lambda q: q[1], reverse=args.label_order == "longest")  # stable: ties keep the file's order
    if args.label_limit is not None:
        queue = queue[: args.label_limit]
    return queue, dropped


def plan_round(costs: list[float], procs: int, seconds_per_cost: float | None, available: float) -> int:
    """How many chains of the queue (costs in queue order) one round takes: the longest prefix whose
    chains, dealt round-robin to `procs` processes (chain i to process i % procs, as `--shard i/procs`
    does), give no process more than `available` seconds at `seconds_per_cost` per process. Without a
    speed (None), the whole queue."""
    if seconds_per_cost is None:
        return len(costs)
    load = [0.0] * max(1, procs)
    for i, c in enumerate(costs):
        k = i % len(load)
        if load[k] + c * seconds_per_cost > available:
            return i
        load[k] += c * seconds_per_cost
    return len(costs)


def merge_parts(label_dir: Path, target: Path, order: list[str]) -> list[dict]:
    """Every complete record of label_dir's part files, one per id (the first seen), in `order` (ids of the
    queue; others after), written atomically to `target`; returns them."""
    recs: dict[str, dict] = {}
    for part in sorted(label_dir.glob("part-*.jsonl")):
        for line in part.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if isinstance(rec, dict) and "order" in rec:
                recs.setdefault(str(rec["id"]), rec)
    from predictor.jsonl_io import atomic_write_jsonl

    rank = {cid: i for i, cid in enumerate(order)}
    out = sorted(recs.values(), key=lambda r: (rank.get(str(r["id"]), len(rank)), str(r["id"])))
    atomic_write_jsonl(target, out)
    return out


def run_round(args, model: str, queue_file: Path, label_dir: Path, tag: str, stop_at: float, log,
              merge: Callable[[], None]) -> dict[str, Any]:
    """One round: --label-procs `predictor label` processes on `queue_file` (--shard i/K), until they end or
    the clock reaches `stop_at` (then SIGINT, and SIGKILL 30 s later); merges every 30 s."""
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    k = args.label_procs
    procs = []
    for i in range(k):
        cmd = [sys.executable, "-m", "predictor", "label", "--in", str(queue_file),
               "--out", str(label_dir / f"part-{tag}-{i}of{k}.jsonl"), "--model", model, "--device", str(args.device),
               "--threads", "1", "--shard", f"{i}/{k}", "--objective", "joint"]
        if args.label_batch_tokens:
            cmd += ["--batch-tokens", str(args.label_batch_tokens)]
        log.write(f"\n$ {shlex.join(cmd)}\n".encode())
        log.flush()
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
    t0 = time.perf_counter()
    interrupted = False
    last_merge = time.perf_counter()
    while any(p.poll() is None for p in procs):
        if time.perf_counter() >= stop_at:
            interrupted = True
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            end = time.perf_counter() + 30
            for p in procs:
                try:
                    p.wait(timeout=max(0.1, end - time.perf_counter()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            break
        time.sleep(1.0)
        if time.perf_counter() - last_merge > 30:
            merge()
            last_merge = time.perf_counter()
    return {"processes": k, "wall_s": time.perf_counter() - t0, "interrupted": interrupted,
            "exit_codes": [p.returncode for p in procs]}


def part_label_long(args, model: str | None, tokenizer, max_length: int, clock: Clock, out: Path,
                    seconds_per_cost: float | None, save: Callable[[], None], result: dict) -> None:
    """Part c (see the module doc): skipped without real weights; with --smoke and no --model, a tiny random
    LM (in a temporary folder) labels a couple of short chains and `predictor verify-ranked` re-checks them.
    With --smoke the part files go to a temporary folder too (unless --label-dir)."""
    part = result["label_long"] = {}
    if model is None and not args.smoke:
        part["skipped"] = ("no --model folder with real weights: labels of random weights would be "
                           "meaningless, so no long chains were labeled")
        print(f"[c] skipped: {part['skipped']}", flush=True)
        save()
        return
    with tempfile.TemporaryDirectory(prefix="gpu_run_c_") as tmp:
        label_dir = args.label_dir or Path(tmp) / "label"
        tiny = model is None
        if tiny:
            model = str(tiny_model_dir(args.model_config, Path(tmp) / "tiny-llama"))
            part["smoke_tiny_random_lm"] = True
            seconds_per_cost = None  # part b timed another LM: no speed to plan with
            max_length = min(max_length, 1024)
        label_rounds(args, model, label_dir, tokenizer, max_length, clock, out, seconds_per_cost, save, part)
        if tiny and part.get("labeled"):
            cmd = [sys.executable, "-m", "predictor", "verify-ranked", str(out / "labeled.jsonl"), "--model", model,
                   "--device", "cpu", "--threads", "1", "--limit", str(part["labeled"])]
            run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                                 env={**os.environ, "TQDM_DISABLE": "1"})
            part["verify"] = {"command": shlex.join(cmd[1:]), "returncode": run.returncode,
                              "output": (run.stdout + run.stderr)[-2000:]}
            print(f"[c] verify-ranked on the CPU: exit {run.returncode}", flush=True)
    save()


def label_rounds(args, model: str, label_dir: Path, tokenizer, max_length: int, clock: Clock, out: Path,
                 seconds_per_cost: float | None, save: Callable[[], None], part: dict) -> None:
    """Label the queue in rounds of `predictor label` processes writing part files in `label_dir`, until the
    budget ends (see the module doc); fills `part`."""
    label_dir.mkdir(parents=True, exist_ok=True)
    target = out / "labeled.jsonl"
    done = labeled_ids_all(label_dir)
    queue, dropped = build_queue(args, tokenizer, max_length, done)
    order = [c.id for c, _, _ in queue]
    part.update({"model": model, "input": str(args.label_in), "exclude": [str(p) for p in args.label_exclude],
                 "split": args.label_split, "order": args.label_order, "max_tokens": args.label_max_tokens,
                 "queue": len(queue), "resumed": len(done), "dropped": dropped, "processes": args.label_procs,
                 "batch_tokens": args.label_batch_tokens, "label_dir": str(label_dir), "file": str(target),
                 "rounds": []})
    print(f"[c] queue: {len(queue)} chains ({dropped}), {len(done)} already in {label_dir}", flush=True)
    merge = lambda: merge_parts(label_dir, target, order)  # noqa: E731
    stop_at = time.perf_counter() + clock.left(FINISH_MARGIN_S)
    pos = 0
    overhead = 20.0  # seconds a round spends starting processes and loading the LM, until measured
    round_no = 0
    with open(out / "label.log", "ab") as log:
        while pos < len(queue):
            available = stop_at - time.perf_counter() - overhead
            costs = [search_cost(n, a) for _, n, a in queue[pos:]]
            # before a measured round: each of K processes at 1/K of one process's speed (the device shared)
            spc = None if seconds_per_cost is None else seconds_per_cost * (args.label_procs if round_no == 0 else 1)
            take = plan_round(costs, args.label_procs, spc, available)
            if available <= 0 or take == 0:
                why = (f"{available:.0f} s left after the start-up; the next chain ({queue[pos][1]} tokens) needs "
                       f"about {costs[0] * (spc or 0):.0f} s per process")
                part["stopped"] = why
                print(f"[c] stop: {why}", flush=True)
                break
            batch = queue[pos: pos + take]
            tag = f"r{int(time.time())}-{round_no}"
            qfile = label_dir / f"queue-{tag}.jsonl"
            with open(qfile, "w") as f:
                for c, _, _ in batch:
                    f.write(json.dumps(c.to_dict()) + "\n")
            print(f"[c] round {round_no}: {len(batch)} chains ({batch[0][1]}-{batch[-1][1]} tokens) on "
                  f"{args.label_procs} processes, {available:.0f} s available", flush=True)
            before = labeled_ids_all(label_dir)
            info = run_round(args, model, qfile, label_dir, tag, stop_at, log, merge)
            recs = merge()
            new = [r for r in recs if str(r["id"]) not in before]
            info.update(chains=len(batch), labeled=len(new), tokens=sum(len(r["ranks"]) for r in new))
            part["rounds"].append(info)
            print(f"[c] round {round_no}: {len(new)} labeled in {info['wall_s']:.0f} s"
                  f"{' (interrupted)' if info['interrupted'] else ''}", flush=True)
            if new:  # measured: each process's seconds per cost unit, and the start-up
                per = [float(r["seconds"]) / max(1.0, search_cost(len(r["ranks"]), len(r["answer_ids"])))
                       for r in new]
                seconds_per_cost = max(per) * 1.1
                overhead = max(5.0, info["wall_s"] - sum(float(r["seconds"]) for r in new) / args.label_procs)
            pos += take
            round_no += 1
            save()
            if info["interrupted"] or not new:
                break
    recs = merge()
    labeled = [r for r in recs if str(r["id"]) not in done]
    part.update(labeled=len(labeled), reasoning_tokens=sum(len(r["ranks"]) for r in labeled),
                total_in_file=len(recs), wall_s=sum(r["wall_s"] for r in part["rounds"]),
                median_s_per_chain=statistics.median(float(r["seconds"]) for r in labeled) if labeled else None,
                lm_fingerprints=sorted({str(r.get("lm")) for r in recs}),
                ids=[str(r["id"]) for r in labeled])
    if part["wall_s"]:
        part["ranked_tokens_per_s"] = part["reasoning_tokens"] / part["wall_s"]
    save()


def labeled_ids_all(label_dir: Path) -> set[str]:
    """Ids of the complete records of every part file in label_dir."""
    out: set[str] = set()
    for f in label_dir.glob("part-*.jsonl"):
        out |= labeled_ids(f)
    return out


# --- output -----------------------------------------------------------------------------------------
def markdown(result: dict) -> str:
    """gpu_run.md: the command, the device, one table per part."""
    env = result.get("environment", {})
    lines = ["# GPU run (issue 28, item 5)", "",
             f"- command: `{result['command']}`",
             f"- device: {env.get('device_name', '?')}",
             f"- software: Python {env.get('python')}, torch {env.get('torch')}, transformers {env.get('transformers')}, "
             f"{env.get('lightgbm')}",
             f"- weights: {result.get('weights', '?')}",
             f"- budget {result['budget_seconds']:.0f} s, elapsed {result.get('elapsed_s', 0):.0f} s "
             f"(setup {result.get('setup_s', 0):.0f} s)"]
    for note in result.get("notes", []):
        lines.append(f"- note: {note}")
    for err in result.get("errors", []):
        lines.append(f"- ERROR: {err}")
    pa = result.get("predict")
    if pa:
        lines += ["", "## a. predict_ranks: one list (batched) vs one chain at a time", "",
                  f"Predictor `{pa['predictor']}`; medians of the timed rounds after one warm-up of each mode. "
                  f"Target: batched >= {pa['target_speedup']:.0f}x.", "",
                  "| reasoning tokens | sequence tokens | chains | one at a time s | batched s | one at a time chains/s "
                  "| batched chains/s | speed-up | same ranks | peak MiB one / batched |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in pa["rows"]:
            peak = (f"{r['single_peak_mib']:.0f} / {r['batched_peak_mib']:.0f}" if "single_peak_mib" in r else "-")
            lines.append(f"| {r['reasoning_tokens']} | {r['sequence_tokens']} | {r['chains']} | {r['single_s']:.3f} | "
                         f"{r['batched_s']:.3f} | {r['single_chains_per_s']:.1f} | {r['batched_chains_per_s']:.1f} | "
                         f"{r['speedup']:.2f}x | {r['same_ranks']}/{r['chains']} | {peak} |")
        for s in pa["skipped"]:
            lines.append(f"\nSkipped length {s['reasoning_tokens']}: {s['why']}.")
    pb = result.get("label_speed")
    if pb:
        lines += ["", f"## b. Labeling throughput (one chain per length; approximate budget {pb['budget']:g})", "",
                  "| search | reasoning tokens | answer tokens | s per chain | LM tokens | LM tokens/s "
                  "| reasoning tokens ranked/s | share of exact LM tokens | Spearman vs exact |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in pb["rows"]:
            share = f"{r['share_of_exact_lm_tokens']:.3f}" if "share_of_exact_lm_tokens" in r else "-"
            rho = f"{r['spearman_vs_exact']:.3f}" if "spearman_vs_exact" in r else "-"
            lines.append(f"| {r['mode']} | {r['reasoning_tokens']} | {r['answer_tokens']} | {r['seconds']:.2f} | "
                         f"{r['lm_tokens']} | {r['lm_tokens_per_s']:.0f} | {r['ranked_tokens_per_s']:.2f} | "
                         f"{share} | {rho} |")
        for s in pb["skipped"]:
            lines.append(f"\nSkipped {s.get('mode')} at {s.get('reasoning_tokens', '-')} tokens: {s['why']}.")
        lines.append("\nexact: `greedy_layout(lm, lay, SearchOptions())`; budget: `approximate_greedy_layout(..., "
                     "budget=F, proposer=predictor_proposer(rp, chain))` (label --budget F); lazy: the same "
                     "without a proposer (label --budget F --proposer none).")
    pc = result.get("label_long")
    if pc is not None:
        lines += ["", "## c. Long chains labeled (exact greedy, JOINT)", ""]
        if "skipped" in pc:
            lines.append(f"Skipped: {pc['skipped']}.")
        elif "processes" not in pc:
            lines.append("Did not start (see the errors above).")
        else:
            lines += ["| processes | queue | labeled | reasoning tokens | wall s | ranked tokens/s, all processes "
                      "| median s per chain, per process | file |", "|---|---|---|---|---|---|---|---|",
                      f"| {pc['processes']} | {pc['queue']} | {pc.get('labeled', 0)} | {pc.get('reasoning_tokens', 0)} | "
                      f"{pc.get('wall_s', 0):.0f} | {pc.get('ranked_tokens_per_s', 0):.2f} | "
                      f"{pc.get('median_s_per_chain') or 0:.1f} | {Path(pc['file']).name} |", ""]
            if pc.get("smoke_tiny_random_lm"):
                lines.append("Smoke test: a tiny random LM labeled these; the labels are meaningless.")
            lines.append(f"LM fingerprint(s) in the file: {', '.join(pc.get('lm_fingerprints', [])) or '-'}; "
                         f"rounds: {len(pc['rounds'])}; {pc.get('stopped', '')}")
            lines.append(f"\nCheck on the CPU: `predictor verify-ranked {Path(pc['file']).name} --limit 3 --device cpu "
                         "--threads 1` (see benchmarks/device/README.md).")
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, result: dict) -> None:
    """gpu_run.json and gpu_run.md, atomically."""
    from predictor.jsonl_io import atomic_write_text

    for name, text in (("gpu_run.json", json.dumps(result, indent=1, default=str)), ("gpu_run.md", markdown(result))):
        atomic_write_text(out / name, text)


# --- main -------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = settle(build_parser().parse_args(argv))
    clock = Clock(args.budget_seconds)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    argv_shown = sys.argv[1:] if argv is None else list(argv)
    result: dict[str, Any] = {"command": shlex.join(["python", "benchmarks/device/gpu_run.py", *map(str, argv_shown)]),
                              "budget_seconds": args.budget_seconds, "smoke": args.smoke, "notes": [], "errors": [],
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def save() -> None:
        result["elapsed_s"] = clock.elapsed()
        write_outputs(out, result)

    result["environment"] = environment(device)
    print(f"device: {result['environment']['device_name']}; torch {torch.__version__}, transformers "
          f"{result['environment']['transformers']}, {result['environment']['lightgbm']}", flush=True)
    from predictor.chains import read_chains
    from predictor.lm import load_lm

    dtype = getattr(torch, args.dtype)
    if args.model:
        lm = load_lm(args.model, device=device, dtype=dtype)
        real = True
        result["weights"] = f"real: {args.model} (LM fingerprint {lm.fingerprint})"
    else:
        lm = random_lm(args.model_config, device, dtype, args.seed)
        real = False
        result["weights"] = (f"random (seed {args.seed}), architecture and tokenizer from {args.model_config}; the "
                             "time per LM token does not depend on the weights' values, the ranks do (meaningless)")
    result["lm"] = {"name": lm.name, "fingerprint": lm.fingerprint, "dtype": str(lm.dtype), "layers": lm.num_layers,
                    "heads": lm.num_heads, "parameters": sum(p.numel() for p in lm.model.parameters())}
    pool = read_chains(args.chains)
    rp = None
    try:
        from predictor.rank_predictor import RankPredictor

        rp = RankPredictor.load(args.predictor, lm=lm, check_lm=False)
        want = rp.scorer.metadata.get("lm_fingerprint") if hasattr(rp.scorer, "metadata") else None
        if real and want and want != lm.fingerprint:
            result["notes"].append(f"the predictor was trained for LM {want}, this LM is {lm.fingerprint}")
    except Exception as e:  # noqa: BLE001 -- reported in the outputs; part b's exact and lazy rows still run
        result["errors"].append(f"predictor {args.predictor}: {type(e).__name__}: {e}")
        print(f"predictor failed to load: {e}", flush=True)
    result["setup_s"] = clock.elapsed()
    save()
    reserve_c = args.label_seconds if "c" in args.parts and (args.model or args.smoke) else 0.0
    if "a" in args.parts and rp is not None:
        try:
            part_predict(args, rp, pool, clock, reserve_c, save, result)
        except Exception as e:  # noqa: BLE001 -- keep the other parts
            result["errors"].append(f"part a: {type(e).__name__}: {e}")
            print(f"[a] failed: {e}", flush=True)
        save()
    if "b" in args.parts:
        try:
            part_label_speed(args, lm, rp, pool, clock, reserve_c, real, save, result)
        except Exception as e:  # noqa: BLE001
            result["errors"].append(f"part b: {type(e).__name__}: {e}")
            print(f"[b] failed: {e}", flush=True)
        save()
    if "c" in args.parts:
        exact = [r for r in result.get("label_speed", {}).get("rows", []) if r["mode"] == "exact"]
        spc = exact[-1]["seconds_per_cost"] if exact and real else None  # the longest exact row: closest to the queue's
        lm_max = lm.max_length
        tok = lm.tokenizer
        del rp, lm  # free the device for the label processes
        import gc

        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        try:
            part_label_long(args, args.model, tok, lm_max, clock, out, spc, save, result)
        except Exception as e:  # noqa: BLE001
            result["errors"].append(f"part c: {type(e).__name__}: {e}")
            print(f"[c] failed: {e}", flush=True)
    save()
    print(f"wrote {out / 'gpu_run.json'} and {out / 'gpu_run.md'} in {clock.elapsed():.0f} s", flush=True)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
