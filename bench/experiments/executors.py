"""Where runs execute: in this process or in worker processes (Ray tasks: :mod:`.ray_executor`).

An executor takes the (config, artifacts folder) pairs still to run, calls ``started`` in the
driver as each is handed out, and yields each :class:`~aebench.experiments.run_task.RunResult` as
it finishes; :func:`~aebench.experiments.run_task.run_one` is the same pure function
everywhere. Only the driver writes the store.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

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
