"""Where runs execute: in this process, in worker processes, or as Ray tasks.

An executor takes the (config, artifacts folder) pairs still to run, calls ``started`` in the
driver as each is handed out, and yields each :class:`~aebench.experiments.run_task.RunResult` as
it finishes; :func:`~aebench.experiments.run_task.run_one` is the same pure function
everywhere. Only the driver writes the store.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from aebench import data
from aebench.core.errors import UsageError
from aebench.data import ImageData
from aebench.experiments.run_task import WORKER_DIED, Executor, RunResult, Started, run_one
from aebench.experiments.suite import RunConfig


def local_executor(jobs: int = 1, quiet: bool = True) -> Executor:
    """Run in this process (``jobs=1``) or in ``jobs`` worker processes, threads split evenly."""

    def execute(work: list[tuple[RunConfig, Path]], started: Started) -> Iterator[RunResult]:
        if jobs <= 1:
            for cfg, out in work:
                started(cfg, out)
                yield run_one(cfg, out, quiet=quiet)
            return
        threads = max(1, (os.cpu_count() or 1) // jobs)
        pool = cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"))
        # never more runs handed to the pool than there are workers: a run in the pool's queue
        # cannot be cancelled, so on Ctrl-C it would still start and train to the end
        queue = list(work)
        running: dict[cf.Future[RunResult], RunConfig] = {}
        try:
            while queue or running:
                while queue and len(running) < jobs:
                    cfg, out = queue.pop(0)
                    started(cfg, out)
                    running[pool.submit(run_one, cfg, out, threads)] = cfg
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                dead = [f for f in done if isinstance(f.exception(), cf.process.BrokenProcessPool)]
                for fut in done:
                    if fut not in dead:
                        del running[fut]
                        yield fut.result()
                if dead:
                    # a worker died (killed, out of memory): the pool is gone with every run in
                    # flight, so those runs fail and a fresh pool takes the queued ones
                    for cfg in running.values():
                        yield RunResult(cfg.config_hash, "failed", error=WORKER_DIED)
                    running.clear()
                    pool.shutdown(wait=True)
                    pool = cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"))
        except BaseException:  # Ctrl-C, SIGTERM, or the driver stopped reading (a run was
            # interrupted): stop the workers instead of waiting for their runs to finish
            stop_workers(pool)
            raise
        pool.shutdown(wait=True)

    return execute


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a suite runs, SIGTERM (a scheduler's or ``kill``'s stop) is handled like Ctrl-C:
    runs in flight checkpoint and are recorded as interrupted instead of left 'running'."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def stop_workers(pool: Any, grace_s: float = 60.0) -> None:
    """Ask the running workers to stop: SIGTERM makes a training worker write its checkpoint
    and return, and the driver then records every unfinished run as interrupted, so the same
    command resumes them. A worker still alive after ``grace_s`` is killed (its run resumes from
    the last epoch's checkpoint)."""
    pool.shutdown(wait=False, cancel_futures=True)
    workers = mp.active_children()
    for proc in workers:
        with suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in workers:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
    pool.shutdown(wait=True)


def require_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`UsageError` if it cannot be imported.

    Any exception counts, not only ImportError: a broken install (a missing shared library, a
    version clash) raises all sorts. The runner calls this before it opens the store, so a
    suite that cannot run leaves no pending rows behind.
    """
    try:
        import ray  # deferred: optional, and slow to import; only the ray executor needs it
    except ImportError as err:
        if err.name == "ray":
            raise UsageError("the ray executor needs Ray: pip install 'aebench[ray]'") from None
        problem: BaseException = err
    except (Exception, SystemExit) as err:
        problem = err
    else:
        return ray
    detail = " ".join(f"{type(problem).__name__}: {problem}".split())[:200]
    raise UsageError(f"the ray executor cannot import Ray ({detail})") from None


#: CPUs a Ray task reserves, and so the torch threads it runs with, unless --threads-per-run
#: says otherwise: small conv nets gain little from a second thread (0.62x of two threads'
#: time on the 2-core reference CPU, noxfile.py's bench), so one run per core fills a node best.
DEFAULT_THREADS_PER_RUN = 1


def ray_task(cfg: RunConfig, quiet: bool, dataset: ImageData) -> RunResult:
    """One run as a Ray task, on whichever node Ray picks; nothing of the driver's filesystem
    is assumed there.

    * torch gets exactly the CPUs Ray assigned to this task (Ray sets ``OMP_NUM_THREADS`` only
      where the node left it unset, so the threads are set here), and the result records what
      was reserved;
    * ``dataset`` arrives from the object store (Ray resolves the driver's reference before the
      call), so the node needs no data folder;
    * the run trains in node-local scratch, and its folder's files travel back in the result
      (Ray's object store carries large return values), for the driver to write.
    """
    import ray  # only ever called inside a Ray worker

    from aebench.experiments.single_run import RUN_OUTPUTS  # deferred: torchvision

    assigned = ray.get_runtime_context().get_assigned_resources()
    cpus, gpus = assigned.get("CPU", 0.0), assigned.get("GPU", 0.0)
    threads = max(1, int(cpus))
    scratch = Path(tempfile.mkdtemp(prefix="aebench-run-"))
    try:
        result = run_one(cfg, scratch / "run", threads, quiet, dataset)
        if (scratch / "run").is_dir():
            result.files = {
                f.name: f.read_bytes()
                for f in sorted((scratch / "run").iterdir())
                if f.is_file() and f.name in RUN_OUTPUTS
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.environment["resources"] = f"ray: {cpus:g} CPU{'s' if cpus != 1 else ''}" + (
        f", {gpus:g} GPU" if gpus else ""
    )
    return result


def _deliver(result: RunResult, out: Path) -> RunResult:
    """Write a Ray task's shipped files into the driver's run folder; a folder that cannot be
    written fails the run in one line rather than the suite."""
    if result.files:
        from aebench.experiments.single_run import write_run_files  # deferred: torchvision

        try:
            write_run_files(out, result.files)
        except UsageError as err:
            result.status, result.error = "failed", str(err)
        result.files = {}
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


def _largest_node_cpus(ray: Any) -> float:
    """The most CPUs any live node of the cluster offers."""
    return max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0)


def _refuse_unreachable(address: str, timeout_s: float = 5.0) -> None:
    """A ``HOST:PORT`` (or ``ray://HOST:PORT``) nothing answers on is one line, at once: Ray's
    own ``init`` retries such an address for minutes. ``auto`` and other forms go to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as err:  # refused, timed out, unknown host, port > 65535
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise UsageError(
            f"cannot reach a Ray cluster at {address!r} ({reason or 'timed out'}); start one "
            "with `ray start --head` (docs/usage.md) or check the address"
        ) from None


def _connect(ray: Any, address: str | None, quiet: bool) -> None:
    """Join the cluster at ``address`` (one line when it cannot be reached), or start a local
    one on this machine's cores."""
    if not address:
        ray.init(
            address="local",  # a new cluster here, never one found by Ray's auto-detection
            num_cpus=os.cpu_count() or 1,
            include_dashboard=False,
            object_store_memory=200 * 1024**2,
            log_to_driver=not quiet,
        )
        return
    _refuse_unreachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        detail = " ".join(str(err).split())[:160]
        raise UsageError(f"cannot reach a Ray cluster at {address!r} ({detail})") from None


def ray_executor(
    address: str | None = None,
    quiet: bool = True,
    threads_per_run: int = DEFAULT_THREADS_PER_RUN,
    gpus_per_run: float = 1.0,
) -> Executor:
    """Each run is a Ray task reserving ``threads_per_run`` CPUs, and on a CUDA suite
    ``gpus_per_run`` GPUs (a fraction packs small nets several to a GPU); the task runs torch on
    what it reserved (:func:`ray_task`). Results come back to the driver, which alone writes
    the store."""
    ray = require_ray()
    if threads_per_run < 1:
        raise UsageError(f"--threads-per-run must be >= 1, got {threads_per_run}")
    if not 0 < gpus_per_run <= 1:
        raise UsageError(f"--gpus-per-run must be in (0, 1], got {gpus_per_run:g}")
    # joined now, before the runner writes a pending row: a cluster that cannot be reached or
    # has no node large enough for one run is refused with nothing written
    started_here = not ray.is_initialized()
    if started_here:
        _connect(ray, address, quiet)
    largest = _largest_node_cpus(ray)
    if threads_per_run > largest:
        if started_here:
            ray.shutdown()
        raise UsageError(
            f"--threads-per-run {threads_per_run} is more than any node of the Ray cluster has "
            f"(the largest has {largest:g} CPUs)"
        )

    def execute(work: list[tuple[RunConfig, Path]], started: Started) -> Iterator[RunResult]:
        try:
            shared, unreadable = _share_datasets(ray, [cfg for cfg, _ in work])
            remote = ray.remote(ray_task)
            refs = {}
            for cfg, out in work:
                started(cfg, out)  # queued in Ray's scheduler, which starts it when it fits
                key = (cfg.dataset, cfg.data_dir)
                if key in unreadable:  # as a local run whose data cannot be read: it fails
                    yield RunResult(cfg.config_hash, "failed", error=unreadable[key])
                    continue
                gpus = gpus_per_run if cfg.train.device.startswith("cuda") else 0
                task = remote.options(num_cpus=threads_per_run, num_gpus=gpus)
                refs[task.remote(cfg, quiet, shared[key])] = out
            pending = list(refs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                yield _deliver(ray.get(ready[0]), refs[ready[0]])
        finally:
            if started_here:
                ray.shutdown()

    return execute
