"""Runs as Ray tasks on a cluster that shares no filesystem with the driver (docs/cluster.md).

* The driver loads each dataset once and puts it in Ray's object store; no node needs the data
  folder.
* A task reserves the CPUs it runs torch on, trains in node-local scratch, streams its latest
  checkpoint back every ``checkpoint_every_s`` and returns the run's files as its last value;
  the driver alone writes the run folder and the store.
* A task lost to a fault of the cluster (its node or worker died) is started again on another
  node from the last checkpoint the driver received, up to :data:`NODE_FAULT_RETRIES` times. A
  run that fails for its own reasons returns ``failed`` from the task and is never retried.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aebench import data
from aebench.core.errors import UsageError
from aebench.data import ImageData
from aebench.experiments.ray_cluster import join_cluster, require_ray
from aebench.experiments.run_task import Executor, RunResult, Started, run_one
from aebench.experiments.scratch import make_run_scratch, sweep_dead_scratch
from aebench.experiments.suite import RunConfig

#: CPUs a Ray task reserves, and so the torch threads it runs with, unless --threads-per-run
#: says otherwise: small conv nets gain little from a second thread (0.62x of two threads'
#: time on the 2-core reference CPU, noxfile.py's bench), so one run per core fills a node best.
DEFAULT_THREADS_PER_RUN = 1
#: seconds between two checkpoints a task ships back (--checkpoint-every, in minutes, on the
#: command line): a run loses at most this much work when its node dies, and each shipment
#: costs one copy of the weights and optimizer state through the object store
DEFAULT_CHECKPOINT_EVERY_S = 300.0
#: how often a run lost to a cluster fault (node or worker died) is started again
NODE_FAULT_RETRIES = 3
#: how often the task looks for a newer checkpoint in its scratch folder
POLL_S = 0.5


@dataclass
class Checkpoint:
    """A run's checkpoint files (``checkpoint*.safetensors``, one per stage) by name, as a task
    ships them back; enough to resume the run in an empty folder."""

    files: dict[str, bytes]
    epochs_done: int  #: of the stage being trained when it was taken


@dataclass
class _RayRun:
    """The driver's record of one run on the cluster: where it goes, its data, its latest
    shipped checkpoint and how many times a fault has restarted it."""

    cfg: RunConfig
    out: Path
    dataset: Any  # the object-store reference
    checkpoint: Checkpoint | None = None
    restarts: int = 0
    notes: list[str] = field(default_factory=list)


def _read_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The checkpoint files in ``run_dir`` now (each is replaced atomically, so a read sees one
    whole version), or None when there are none or the run has just removed them."""
    from aebench.training.checkpoint import epochs_done  # deferred: torch

    files: dict[str, bytes] = {}
    stamps: dict[Path, int] = {}
    try:
        for path in sorted(run_dir.glob("checkpoint*.safetensors")):
            stamps[path] = path.stat().st_mtime_ns
            files[path.name] = path.read_bytes()
        epochs = epochs_done(max(stamps, key=stamps.__getitem__)) if stamps else 0
    except FileNotFoundError:  # the finished run removed it between glob and read
        return None
    return Checkpoint(files, epochs) if files else None


def _stamps(run_dir: Path) -> dict[str, int]:
    """Each checkpoint file's modification time; {} while the run is removing them."""
    try:
        return {p.name: p.stat().st_mtime_ns for p in run_dir.glob("checkpoint*.safetensors")}
    except FileNotFoundError:
        return {}


def _checkpoint_stream(
    run: threading.Thread, run_dir: Path, every_s: float
) -> Iterator[Checkpoint]:
    """While ``run`` trains into ``run_dir``, the newest checkpoint at most every ``every_s``
    seconds, each only once."""
    shipped: dict[str, int] = {}
    last = time.monotonic()
    while run.is_alive():
        run.join(POLL_S)
        if not run.is_alive() or time.monotonic() - last < every_s:
            continue
        stamps = _stamps(run_dir)
        if stamps and stamps != shipped:
            with_files = _read_checkpoint(run_dir)
            if with_files is not None:
                shipped, last = stamps, time.monotonic()
                yield with_files


def ray_task(
    cfg: RunConfig,
    quiet: bool,
    dataset: ImageData,
    resume_from: Checkpoint | None = None,
    checkpoint_every_s: float = DEFAULT_CHECKPOINT_EVERY_S,
) -> Iterator[Checkpoint | RunResult]:
    """One run as a Ray generator task, on whichever node Ray picks; nothing of the driver's
    filesystem is assumed there.

    * torch gets exactly the CPUs Ray assigned to this task (Ray sets ``OMP_NUM_THREADS`` only
      where the node left it unset, so the threads are set here), and the result records what
      was reserved;
    * ``dataset`` arrives from the object store (Ray resolves the driver's reference before the
      call), so the node needs no data folder;
    * the run trains in node-local scratch (in a thread, continuing ``resume_from`` when
      given); its newest checkpoint is yielded back every ``checkpoint_every_s`` seconds, and
      finally the :class:`RunResult` with the run folder's files, for the driver to write.
    """
    import ray  # only ever called inside a Ray worker

    from aebench.experiments.single_run import RUN_OUTPUTS  # deferred: torchvision

    assigned = ray.get_runtime_context().get_assigned_resources()
    cpus, gpus = assigned.get("CPU", 0.0), assigned.get("GPU", 0.0)
    threads = max(1, int(cpus))
    sweep_dead_scratch()  # left by tasks killed with their worker or node
    scratch = make_run_scratch()
    run_dir = scratch / "run"
    try:
        if resume_from is not None:
            run_dir.mkdir()
            for name, blob in resume_from.files.items():
                (run_dir / Path(name).name).write_bytes(blob)
        box: dict[str, RunResult] = {}
        training = threading.Thread(
            target=lambda: box.update(result=run_one(cfg, run_dir, threads, quiet, dataset)),
            name="aebench-run",
            daemon=True,
        )
        training.start()
        yield from _checkpoint_stream(training, run_dir, checkpoint_every_s)
        result = box["result"]  # run_one never raises: a failing run returns "failed"
        if run_dir.is_dir():
            result.files = {
                f.name: f.read_bytes()
                for f in sorted(run_dir.iterdir())
                if f.is_file() and f.name in RUN_OUTPUTS
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.environment["resources"] = f"ray: {cpus:g} CPU{'s' if cpus != 1 else ''}" + (
        f", {gpus:g} GPU" if gpus else ""
    )
    yield result


def _deliver(result: RunResult, run: _RayRun) -> RunResult:
    """Write a Ray task's shipped files into the driver's run folder; a folder that cannot be
    written fails the run in one line rather than the suite. Restarts after cluster faults are
    recorded beside the resources the run reserved."""
    if result.files:
        from aebench.experiments.single_run import write_run_files  # deferred: torchvision

        try:
            write_run_files(run.out, result.files)
        except UsageError as err:
            result.status, result.error = "failed", str(err)
        result.files = {}
    if run.notes:  # kept beside what was reserved, in the store's resources column
        reserved = result.environment.get("resources", "ray")
        result.environment["resources"] = "; ".join([reserved, *run.notes])
    return result


def _share_datasets(ray: Any, configs: list[RunConfig]) -> tuple[dict, dict[Any, str]]:
    """Each (dataset, data folder) of the suite, loaded once here in the driver and put in
    Ray's object store, so that worker nodes need neither the data folder nor a download.
    Returns the references and, for a dataset that cannot be read, its one-line error."""
    shared: dict[tuple[str, str | None], Any] = {}
    unreadable: dict[tuple[str, str | None], str] = {}
    for cfg in configs:
        key = (cfg.dataset, cfg.data_dir)
        if key in shared or key in unreadable:
            continue
        try:
            shared[key] = ray.put(data.load(cfg.dataset, cfg.data_dir))
        except UsageError as err:
            unreadable[key] = str(err)
    return shared, unreadable


def _is_cluster_fault(ray: Any, err: BaseException) -> bool:
    """Whether a task's error is the cluster's (its node or worker died, its objects were
    lost), so a restart elsewhere can succeed, rather than an error raised by the task's code."""
    return isinstance(err, ray.exceptions.RayError) and not isinstance(
        err, ray.exceptions.RayTaskError | ray.exceptions.TaskCancelledError
    )


def _after_fault(run: _RayRun, err: BaseException) -> RunResult | None:
    """Record a cluster fault on ``run``: None when it may start again, else its failed
    result."""
    what = type(err).__name__
    if run.restarts >= NODE_FAULT_RETRIES:
        return RunResult(
            run.cfg.config_hash,
            "failed",
            error=f"lost to cluster faults {run.restarts + 1} times (last: {what})",
        )
    run.restarts += 1
    since = (
        f"the checkpoint after epoch {run.checkpoint.epochs_done}"
        if run.checkpoint
        else "the start (no checkpoint had arrived)"
    )
    run.notes.append(f"{what}, restarted from {since}")
    print(
        f"run {run.cfg.config_hash[:12]}: {what} (its node or worker died); restarting it on "
        f"the cluster from {since} ({run.restarts} of {NODE_FAULT_RETRIES})",
        file=sys.stderr,
    )
    return None


def ray_executor(
    address: str | None = None,
    quiet: bool = True,
    threads_per_run: int = DEFAULT_THREADS_PER_RUN,
    gpus_per_run: float = 1.0,
    checkpoint_every_s: float = DEFAULT_CHECKPOINT_EVERY_S,
) -> Executor:
    """Each run is a Ray task reserving ``threads_per_run`` CPUs, and on a CUDA suite
    ``gpus_per_run`` GPUs (a fraction packs small nets several to a GPU); the task runs torch on
    what it reserved and ships its checkpoint back every ``checkpoint_every_s`` seconds
    (:func:`ray_task`). Results come back to the driver, which alone writes the store."""
    ray = require_ray()
    if threads_per_run < 1:
        raise UsageError(f"--threads-per-run must be >= 1, got {threads_per_run}")
    if not 0 < gpus_per_run <= 1:
        raise UsageError(f"--gpus-per-run must be in (0, 1], got {gpus_per_run:g}")
    if not checkpoint_every_s >= 0:
        minutes = checkpoint_every_s / 60
        raise UsageError(f"--checkpoint-every must be >= 0 minutes, got {minutes:g}")
    # joined now, before the runner writes a pending row: a cluster that cannot be reached or
    # has no node large enough for one run is refused with nothing written
    started_here = join_cluster(ray, address, quiet, threads_per_run)
    # max_retries=0: Ray's own retry would start a lost run from scratch; the driver restarts
    # it from the last shipped checkpoint instead (_after_fault)
    remote = ray.remote(max_retries=0)(ray_task)

    def submit(run: _RayRun) -> Any:
        gpus = gpus_per_run if run.cfg.train.device.startswith("cuda") else 0
        task = remote.options(num_cpus=threads_per_run, num_gpus=gpus)
        return task.remote(run.cfg, quiet, run.dataset, run.checkpoint, checkpoint_every_s)

    def execute(work: list[tuple[RunConfig, Path]], started: Started) -> Iterator[RunResult]:
        try:
            shared, unreadable = _share_datasets(ray, [cfg for cfg, _ in work])
            streams: dict[Any, _RayRun] = {}
            for cfg, out in work:
                started(cfg, out)  # queued in Ray's scheduler, which starts it when it fits
                key = (cfg.dataset, cfg.data_dir)
                if key in unreadable:  # as a local run whose data cannot be read: it fails
                    yield RunResult(cfg.config_hash, "failed", error=unreadable[key])
                    continue
                run = _RayRun(cfg, out, shared[key])
                streams[submit(run)] = run
            while streams:
                (ready,), _ = ray.wait(list(streams), num_returns=1)
                finished = _next_value(ray, ready, streams, submit)
                if finished is not None:
                    yield finished
        finally:
            if started_here:
                ray.shutdown()

    return execute


def _next_value(ray: Any, stream: Any, streams: dict[Any, _RayRun], submit: Any) -> Any:
    """Take the next value of a run's task: keep a checkpoint, restart the run after a cluster
    fault, or return its finished (delivered) :class:`RunResult`; None while it goes on."""
    run = streams[stream]
    err: BaseException = RuntimeError("the task ended without a result")  # treated as lost
    try:
        value = ray.get(next(stream))
    except StopIteration:
        value = None
    except Exception as caught:
        value, err = None, caught
        if not _is_cluster_fault(ray, caught):
            del streams[stream]
            detail = " ".join(str(caught).split())[:200]
            return RunResult(run.cfg.config_hash, "failed", error=f"the Ray task failed: {detail}")
    if isinstance(value, Checkpoint):
        run.checkpoint = value
        return None
    del streams[stream]
    if isinstance(value, RunResult):
        return _deliver(value, run)
    failed = _after_fault(run, err)
    if failed is None:
        streams[submit(run)] = run
    return failed
