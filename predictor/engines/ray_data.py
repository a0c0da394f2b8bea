"""`--engine ray`: the per-chain work of `label`, `predict` and `prune` on a Ray cluster (Ray Data).

Pipeline: the driver reads the chains (the local engine's reader and checks), drops those whose
record is already in OUT or in the parts folder (resume; a record whose input chain changed since,
by `ChainJob.record_hash`, is refused as with --engine local), and maps the rest with `map_batches` over
an actor pool: each actor loads the LM once (`jobs.ChainJob.load`) and turns chains into records with
the same `ChainJob.record` as the local loop. Finished records stream back to the driver, which
writes them into atomic part files (`parts.PartWriter`) and shows chains done / total with an ETA on
stderr; at the end, OUT and all parts are merged into OUT (atomic; `parts.merge_records`) and the
parts are removed. A killed actor is restarted and its chain retried; a killed driver loses at most the
records of the last flush interval, and a re-run completes the rest without duplicates.

Resources: every actor reserves --cpus-per-worker CPUs and --gpus-per-worker GPUs. The chains enter
as in-memory blocks (`from_items`), not through read tasks: actors that reserve every CPU of the
cluster would starve read tasks and hang the run (ray-project/ray#44687), while here they may use
every CPU (tested on a 2-CPU cluster with 2 one-CPU actors). A pool that asks for more CPUs or GPUs
than the cluster has would wait forever: it is refused up front.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
import traceback
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..chains import Chain
from .chain_io import Skips, chain_error_kind, report_over_budget
from .jobs import ChainJob
from .parts import PartWriter, iter_output_records, merge_records, part_files

# chains per Ray task: 1 for the slow exact labeler (a retry redoes one chain), more for one-pass prediction
CHAINS_PER_TASK = {"label": 1, "predict": 8, "prune": 8}
# a chain whose actor dies this many times fails the run instead of looping (e.g. out of memory)
MAX_RETRIES = 3


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RuntimeError("--engine ray needs Ray Data: pip install 'predictor[ray]'") from None
    return ray


@dataclass(frozen=True)
class Plan:
    """How many actors and what each reserves (CPUs also set each actor's torch threads)."""

    workers: int
    cpus: float
    gpus: float


def plan_workers(args: argparse.Namespace, resources: dict[str, float]) -> Plan:
    """Size the actor pool from the options and the cluster's resources; ValueError if it cannot run."""
    cpus_total, gpus_total = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    cpus = args.cpus_per_worker
    gpus = args.gpus_per_worker if args.gpus_per_worker is not None else (1.0 if gpus_total >= 1 else 0.0)
    if cpus <= 0 or gpus < 0:
        raise ValueError("--cpus-per-worker must be > 0 and --gpus-per-worker >= 0")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    workers = args.workers or (int(gpus_total // gpus) if gpus else max(1, int(cpus_total // cpus)))
    if workers < 1:
        raise ValueError(f"the cluster has {gpus_total:g} GPUs: none for an actor with --gpus-per-worker {gpus:g}")
    if workers * gpus > gpus_total:
        raise ValueError(f"{workers} workers x {gpus:g} GPUs need {workers * gpus:g} GPUs; the cluster has "
                         f"{gpus_total:g}: lower --workers or --gpus-per-worker")
    if workers * cpus > cpus_total:
        raise ValueError(f"{workers} workers x {cpus:g} CPUs need {workers * cpus:g} CPUs; the cluster has "
                         f"{cpus_total:g} (the actors would wait forever): lower --workers or --cpus-per-worker "
                         "(fractions are allowed)")
    return Plan(workers, cpus, gpus)


@contextmanager
def cluster(args: argparse.Namespace):
    """Reuse this process's Ray connection, else connect to --address, else start a local cluster
    (disconnected / shut down after the run)."""
    ray = import_ray()
    started = False
    if ray.is_initialized():  # a caller (a notebook, the tests) already connected this process
        pass
    elif args.address:
        ray.init(address=args.address, log_to_driver=False)
        started = True
    else:
        want = (args.workers or 1) * args.cpus_per_worker
        ray.init(num_cpus=max(os.cpu_count() or 1, math.ceil(want)), include_dashboard=False,
                 log_to_driver=False)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


class ChainActor:
    """A Ray Data actor: loads the job's LM once; each call turns a batch of chains into records.

    Batch in: {"chain": JSON strings}. Batch out: {"key", "record" (JSON or ""), "skip_kind", "skip",
    "error"}. An error (output of another LM, a bug) travels as a row, not as an exception: Ray keeps
    only the text of a worker's exception, and the driver re-raises it as a ValueError/RuntimeError."""

    def __init__(self, job: ChainJob, existing: tuple[dict[str, Any], str] | None):
        self.job, self.existing, self.loaded = job, existing, False

    def _prepare(self) -> None:
        """Load the LM (at the first call, so that a load error reaches the driver as a row) and refuse
        to resume output of another LM or layout."""
        if not self.loaded:
            self.job.load()
            self.loaded = True
        if self.existing is not None:
            self.job.check_existing(*self.existing)
            self.existing = None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..layout import ChainError

        out: dict[str, list[str]] = {"key": [], "record": [], "skip_kind": [], "skip": [], "error": []}
        for text in batch["chain"]:
            chain = Chain.from_mapping(json.loads(text))
            row = {"key": json.dumps(self.job.chain_key(chain)), "record": "", "skip_kind": "", "skip": "",
                   "error": ""}
            try:
                self._prepare()
                row["record"] = json.dumps(self.job.record(chain), ensure_ascii=False)
            except ChainError as e:
                row["skip_kind"], row["skip"] = chain_error_kind(e), str(e)
            except ValueError as e:
                row["error"] = f"ValueError: {e}"
            except (RuntimeError, OSError) as e:  # e.g. predictor.lm.LMLoadError
                row["error"] = f"RuntimeError: {e}"
            except Exception:  # noqa: BLE001 - a bug: the driver stops with the worker's traceback
                row["error"] = f"RuntimeError: chain {chain.id}: worker error:\n{traceback.format_exc()}"
            for k, v in row.items():
                out[k].append(v)
        return {k: np.array(v, dtype=object) for k, v in out.items()}


def read_input(job: ChainJob, args: argparse.Namespace) -> tuple[list[Chain], Any, dict[str, int], dict[str, str]]:
    """(chains to process, skips, input index of every chain id, "file:line" of each chain id) as the
    local engine reads them; the index covers the whole input (also past --limit): it orders the merged
    output. The locations are known for predict/prune inputs (as the local engine reports them) and
    empty for label. A predict/prune input none of whose lines can be read raises ValueError, as with
    --engine local."""
    skips = Skips()
    reader = job.read_input(skips)
    chains = list(reader)
    reader.check_read()
    every = chains if args.limit is None else list(job.read_input(Skips(), whole=True))
    return chains, skips, {c.id: k for k, c in enumerate(every)}, dict(reader.where)


def check_resumed_content(job: ChainJob, chains: list[Chain], existing: list[tuple[dict[str, Any], str]],
                          remedy: str) -> None:
    """Refuse finished records (of OUT or a part) whose input chain changed since they were written:
    the same content-hash check (`ChainJob.record_hash`) as the local engine's resume; ValueError
    naming the record's file:line."""
    from ..jsonl_io import check_content_hash

    by_key = {job.chain_key(c): c for c in chains}
    for rec, where in existing:
        key = job.key_of(rec)
        if key in by_key:
            check_content_hash(where, key if len(key) > 1 else key[0], job.record_hash(rec),
                               by_key[key].content_hash, remedy)


def _chain_json(c: Chain) -> str:
    return json.dumps({**c.extra, **c.to_dict()}, ensure_ascii=False)


def _unwrap(err: BaseException) -> BaseException:
    """The user-facing error (ValueError, RuntimeError, OSError raised by this project's code in a
    worker) inside a Ray error, else `err` itself."""
    seen: BaseException | None = err
    while seen is not None:
        cause = getattr(seen, "cause", None) or seen.__cause__
        if (isinstance(cause, (ValueError, RuntimeError, OSError))
                and not type(cause).__module__.startswith("ray")):
            return cause
        seen = cause
    return err


def run_ray(job: ChainJob, args: argparse.Namespace) -> int:
    """Run `job` over args.inp on Ray and merge into args.out; 0 on success (errors raise)."""
    from tqdm import tqdm

    from ..jsonl_io import check_settings

    out = Path(args.out)
    parts_dir = Path(args.parts_dir) if args.parts_dir else out.with_name(out.name + ".parts")
    if getattr(args, "shard", (0, 1)) != (0, 1):
        raise ValueError("--shard is for --engine local; --engine ray schedules the chains itself")
    partial = out.with_name(out.name + ".partial")
    if job.command != "label" and partial.exists():
        raise ValueError(f"{partial}: an unfinished --engine local run; finish it with --engine local or delete it")
    import_ray()
    chains, skips, order, where = read_input(job, args)
    existing = list(iter_output_records(out, parts_dir, job.key))
    first = existing[0] if existing else None
    foreign = next((where for rec, where in existing if str(rec["id"]) not in order), None)
    if foreign:  # found now, not after the work: the merge orders records by the input
        raise ValueError(f"{foreign}: id is not in {args.inp}; write the output of another input elsewhere")
    if first is not None:
        check_settings(first[1], first[0], job.static_settings(), words=job.setting_words)
    check_resumed_content(job, chains, existing,
                          f"delete {out}" + (f" and {parts_dir}" if part_files(parts_dir) else ""))
    done = {job.key_of(r) for r, _ in existing}
    todo = [c for c in chains if job.chain_key(c) not in done]
    print(f"{len(chains)} chains, {len(chains) - len(todo)} already done, {len(todo)} to do, "
          f"{skips.total} skipped while reading", file=sys.stderr)
    note = job.planned_note() if todo else None  # the workers load the predictor: its cost is said here
    if note:
        print(note, file=sys.stderr)
    if todo:
        if job.args.threads is None:
            job.args.threads = max(1, int(args.cpus_per_worker))
        parts_dir.mkdir(parents=True, exist_ok=True)
        over_budget = _map_on_ray(job, args, todo, first, parts_dir, skips, tqdm, where)
    else:
        over_budget = []
    merged = merge_records(iter_output_records(out, parts_dir, job.key), job.key, job.settings_fields, order,
                           args.inp, ranked=job.command == "label")
    from ..jsonl_io import atomic_write_jsonl

    atomic_write_jsonl(out, merged)
    for p in part_files(parts_dir):
        p.unlink()
    with contextlib.suppress(OSError):  # only if empty: --parts-dir may name a folder with other files
        parts_dir.rmdir()
    skips.report()
    report_over_budget(over_budget)
    print(f"{job.command} (ray): {len(merged)} records in {args.out}; {skips.total} skipped", file=sys.stderr)
    return 0


def _map_on_ray(job: ChainJob, args, todo: list[Chain], first, parts_dir: Path, skips, tqdm,
                where: dict[str, str] | None = None) -> list[str]:
    """Map `todo` over the actor pool into parts; the ids of records over their budget (prune).
    A skipped chain's message starts with its "file:line" from `where` (chain id -> location) when known."""
    where_of_key = {json.dumps(job.chain_key(c)): (where or {}).get(c.id) for c in todo}
    with cluster(args) as ray:
        plan = plan_workers(args, ray.cluster_resources())
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the driver shows its own: chains done / total, ETA
        ctx.print_on_execution_start = False
        per_task = CHAINS_PER_TASK[job.command]
        ds = ray.data.from_items([{"chain": _chain_json(c)} for c in todo],
                                 override_num_blocks=math.ceil(len(todo) / per_task))
        with warnings.catch_warnings():
            # Ray Data's default is to restart a dead actor and retry its task forever; a chain that
            # kills its actor every time (out of memory) must fail the run instead. Ray 2.60 marks
            # these remote args deprecated (removal planned for 2.64; pyproject pins below that).
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ds.map_batches(ChainActor, fn_constructor_args=(job, first), batch_size=per_task,
                                batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=plan.workers),
                                num_cpus=plan.cpus, num_gpus=plan.gpus,
                                max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES)
        writer = PartWriter(parts_dir)
        seen: set[str] = set()
        over_budget: list[str] = []
        bar = tqdm(total=len(todo), unit="chain", desc=f"{job.command} (ray, {plan.workers} workers)",
                   dynamic_ncols=True, file=sys.stderr)
        t0 = time.monotonic()
        try:
            for row in ds.iter_rows():
                if row["key"] in seen:  # a retried task re-sent a chain it had finished
                    continue
                if row["error"]:
                    kind, _, message = row["error"].partition(": ")
                    raise (ValueError if kind == "ValueError" else RuntimeError)(message)
                seen.add(row["key"])
                if row["record"]:
                    rec = json.loads(row["record"])
                    writer.add(rec)
                    if job.over_budget(rec):
                        over_budget.append(str(rec["id"]))
                else:
                    loc = where_of_key.get(row["key"])
                    skips.add(row["skip_kind"], f"{loc}: {row['skip']}" if loc else row["skip"])
                bar.update(1)
        except ray.exceptions.RayError as e:  # e.g. an actor that died on every retry of its chain
            cause = _unwrap(e)
            if cause is e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                cause = RuntimeError(f"Ray stopped the run ({type(e).__name__}: {first}); the finished records "
                                     f"are kept in {parts_dir}, and a re-run resumes")
            raise cause from None
        finally:
            writer.flush()
            bar.close()
        dt = time.monotonic() - t0
        print(f"{len(seen)} chains in {dt:.1f}s on {plan.workers} worker(s) "
              f"({plan.cpus:g} CPU, {plan.gpus:g} GPU each)", file=sys.stderr)
        return over_budget
