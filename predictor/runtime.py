"""The process runtime, settled in one place: torch's CPU threads, the LM's device and its CPU matmul path.

Every command, `run_training`, `run_finetune`, `run_demo` and the engines' workers go through
`set_threads` and `load_lm_on`; nothing else calls `torch.set_num_threads` or repeats the
`load_lm(model, device=...)` + oneDNN steps. The library faces (`load_lm`, `RankPredictor.load`)
leave threads to their caller.

Threads. torch's own default (one thread per core) collapses on a shared machine: its OpenMP
threads wait for each other at every operation, so one of them sharing a core with another busy
process holds all of them back (`predictor label` on one 30-token chain: THREADS_MEASURED). The
default is therefore the cores left idle: the CPUs this process may run on minus the 1-minute load
average, at least 1 and at most torch's own default; --threads, then a set OMP_NUM_THREADS, win.
"""
from __future__ import annotations

import os

# Measured on this project's 2-core AMD EPYC, whole `predictor label` processes (LM load included) on one
# 30-token GSM8K chain, other processes busy; quoted by --threads' help and docs/architecture.md.
THREADS_MEASURED = ("with one other busy process 15.7 s at 1 thread vs 89 s at 2 (issue 30); with three, "
                    "24 s and 36 s at 1 thread vs 152 s and 234 s at 2")

MATMUL_CHOICES = ("onednn", "default")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, as a container or `taskset` sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def idle_cores() -> int:
    """The usable CPUs minus the 1-minute load average (the processes already running), at least 1."""
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, usable_cpus() - int(busy + 0.5))


def default_threads() -> int:
    """torch's thread count when none is given: OMP_NUM_THREADS if set, else the idle cores (at most
    torch's own default of one per core)."""
    import torch

    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads()
    return max(1, min(torch.get_num_threads(), idle_cores()))


_settled: int | None = None  # the count set_threads chose for this process


def set_threads(threads: int | None = None) -> int:
    """Settle torch's CPU threads for this process: `threads`, or when None/0 `default_threads()` (chosen
    once per process: later calls without a count keep it). Returns the count in force."""
    global _settled
    import torch

    if threads is not None and int(threads) < 0:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    if threads:
        n = int(threads)
    elif _settled is not None and torch.get_num_threads() == _settled:
        return _settled
    else:
        n = default_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    _settled = n
    return n


def use_matmul(lm, matmul: str | None) -> bool:
    """Run the LM's linear layers through oneDNN when matmul is "onednn" and it applies (CPU float32);
    True when it did."""
    if matmul not in (None, *MATMUL_CHOICES):
        raise ValueError(f"matmul must be one of {', '.join(MATMUL_CHOICES)}, got {matmul!r}")
    from .cpu_matmul import onednn_applicable, use_onednn_linears

    if matmul == "onednn" and onednn_applicable(lm.model):
        use_onednn_linears(lm.model)
        return True
    return False


def load_lm_on(model: str | None = None, device: str | None = None, threads: int | None = None,
               matmul: str | None = None):
    """The runtime of one process that uses an LM: threads settled (`set_threads`), the LM loaded on
    `device` (default: cuda if available), its linears switched as `matmul` says (None: torch's)."""
    from .lm import load_lm

    set_threads(threads)
    lm = load_lm(model, device=device)
    use_matmul(lm, matmul)
    return lm
