"""Run a suite: expand the grid, skip what the store has done, run the rest, record everything.

Each run is :func:`~aebench.experiments.run_task.run_one`, handed to an executor
(:mod:`~aebench.experiments.executors`: in this process or in worker processes;
:mod:`~aebench.experiments.ray_executor`: as Ray tasks);
only this driver writes the store.
"""

from __future__ import annotations

import math
import os
import shlex
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from aebench import data, models
from aebench.core.errors import UsageError
from aebench.core.text_table import text_table
from aebench.experiments import executors, ray_executor
from aebench.experiments.run_task import Executor
from aebench.experiments.suite import RunConfig, Suite
from aebench.metrics import features
from aebench.metrics.evaluation import planned_memory_problem
from aebench.metrics.family import headline_keys
from aebench.metrics.generation import SAMPLING_FAMILIES
from aebench.metrics.options import MetricOptions
from aebench.store.database import Store, environment
from aebench.store.lock import refuse_if_held

EXECUTORS = ("local", "ray")


def step_cost(cfg: RunConfig, image_shape: tuple[int, int, int]) -> float:
    """A relative cost of one training step: parameters × update phases (each phase is one
    backward pass over the shared graph) × (1 + the codes decoded per image) / 2 (the encoder
    runs once, the decoder once per code: an IWAE at K = 50 costs ~25 VAE steps when encoder
    and decoder are of a size). Good enough to order runs; it builds the model but never runs
    it, so no model can take the driver down."""
    try:
        model = models.create(cfg.model, **cfg.model_kwargs(image_shape))
    except Exception:  # a config that cannot build fails in its own run, with its message
        return 0.0
    params = sum(p.numel() for p in model.parameters())
    return params * len(model.phases()) * (1 + model.decodes_per_image) / 2


def plan_parallel(configs: list[RunConfig]) -> list[RunConfig]:
    """Prepare runs that are about to fan out over workers; returns them in the order to start.

    Each dataset's domain feature net is trained (or found cached) once here: workers would
    otherwise all train the same net at the same moment, each on a fraction of the cores. The
    order is longest first (by :func:`step_cost` × budget), so the slowest runs do not start last
    and leave the other workers idle at the end. A dataset that fails to load is left alone:
    its runs fail with their own message.
    """
    shapes: dict[tuple[str, str | None], tuple[tuple[int, int, int], int]] = {}
    for name, data_dir in sorted({(c.dataset, c.data_dir) for c in configs}, key=str):
        try:
            dataset = data.load(name, data_dir)
        except UsageError:
            continue
        shapes[(name, data_dir)] = (dataset.image_shape, dataset.train_x.shape[0])
        if any(c.metrics.backbone == "domain" for c in configs if c.dataset == name):
            features.build("domain", dataset)

    costs: dict[tuple[Any, ...], float] = {}  # seeds of one grid point cost the same

    def cost(cfg: RunConfig) -> float:
        if (cfg.dataset, cfg.data_dir) not in shapes:
            return 0
        key = (cfg.model, cfg.model_options, cfg.arch, cfg.latent_dim, cfg.dataset, cfg.data_dir)
        if key not in costs:
            shape, n_train = shapes[(cfg.dataset, cfg.data_dir)]
            kind, value = cfg.train.budget.kind, cfg.train.budget.value
            budget = value * (n_train if kind == "epochs" else 1)
            costs[key] = step_cost(cfg, shape) * float(budget)
        return costs[key]

    return sorted(configs, key=cost, reverse=True)


def refuse_unfit_evaluations(suite: Suite, configs: list[RunConfig]) -> None:
    """Refuse, as one line and before the store is touched, a suite whose runs' evaluations
    would not fit the memory limit for generated images with their dataset's images
    (:func:`~aebench.metrics.evaluation.planned_memory_problem`): :func:`aebench.metrics.evaluate`
    would refuse each of them only after its training. Each dataset is loaded once, for its
    image shape; a dataset that does not load, or a run whose model or device is unknown here,
    is left to its runs, which fail with their own message."""
    shapes: dict[tuple[str, str | None], tuple[tuple[int, int, int], int] | None] = {}
    for cfg in configs:
        options = cfg.evaluation_options()
        if not set(SAMPLING_FAMILIES) & set(options.families or ()):
            continue
        where = (cfg.dataset, cfg.data_dir)
        if where not in shapes:
            try:
                loaded = data.load(*where)
                shapes[where] = (loaded.image_shape, int(loaded.test_x.shape[0]))
            except Exception:  # the runs on it fail with this, each in its own row
                shapes[where] = None
        if (known := shapes[where]) is None:
            continue
        shape, n_test = known
        try:
            problem = planned_memory_problem(options, shape, cfg.model, cfg.train.device, n_test)
        except UsageError:
            continue
        if problem:
            raise UsageError(f"{suite.source}: metrics.n_samples: {problem} (run {cfg.run_name})")


def summary_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: run name, status, seconds and the headline metrics."""
    cols = ["run", "status", *[h for h in headline_keys() if any(h in r for r in rows)]]
    table = []
    for r in rows:
        cells = [r["run"], r["status"]]
        for h in cols[2:]:
            v = r.get(h)
            cells.append(
                "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"
            )
        table.append(cells)
    return text_table(cols, table)


def _measured_otherwise(config: Any, suite: Suite) -> bool:
    """Whether a stored run's metric options differ from the suite's ``[metrics]``."""
    try:
        return MetricOptions.from_dict(dict(config["metrics"])) != suite.metrics
    except (UsageError, KeyError, TypeError, ValueError):
        return False  # unreadable: the store's own checks report it


def run_suite(
    suite: Suite,
    store_path: str | os.PathLike[str] | None = None,
    executor: str = "local",
    jobs: int = 1,
    ray_address: str | None = None,
    quiet: bool = False,
    suite_arg: str | None = None,
    ray_options: dict[str, Any] | None = None,
) -> int:
    """Run every not-yet-done grid point of ``suite``; returns the process exit code (0 when
    every run is done, 1 when any failed or diverged, 130 when interrupted). ``suite_arg`` is
    how the user named the suite (a shipped name or a TOML path), for the hints. ``ray_options``
    go to :func:`~aebench.experiments.ray_executor.ray_executor` (CPUs and GPUs per run, how
    often checkpoints ship)."""
    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    if executor == "ray":
        ray_executor.require_ray()  # before the store: no pending rows for a suite that cannot run
    configs = suite.expand()
    refuse_if_held(store_path)  # before opening: a refused writer leaves the store untouched
    refuse_unfit_evaluations(suite, configs)  # not hours later, after training
    again = shlex.quote(suite_arg or suite.name)
    with Store.open(store_path) as store, store.lock():
        store.recover_stale()
        done = store.done_hashes(suite.name)
        todo = [c for c in configs if c.config_hash not in done]
        _note_measured_otherwise(store, suite, again)
        if not todo:
            print(f"suite {suite.name!r}: all {len(configs)} runs are already done in {store.path}")
            return 0
        execute = (
            executors.local_executor(jobs, quiet=True)
            if executor == "local"
            else ray_executor.ray_executor(ray_address, True, **(ray_options or {}))
        )  # Ray's cluster is joined and checked here, before a pending row is written
        store.add_pending(todo)
        print(
            f"suite {suite.name!r}: {len(todo)} of {len(configs)} runs to do "
            f"({len(configs) - len(todo)} already done) → {store.path}"
        )
        for label, arch in suite.not_run():
            print(f"  not run: {label} on {arch} (the model cannot be built on that backbone)")
        if jobs > 1 or executor == "ray":
            todo = plan_parallel(todo)
        progress = _Progress(suite.name, len(todo), quiet, named=executor == "local" and jobs == 1)
        rows, failed, interrupted = _execute(store, todo, execute, progress)
        if interrupted:
            print(
                f"suite {suite.name!r} interrupted; finished runs are kept. Resume with the "
                f"same command (aebench run {again} --store {shlex.quote(str(store.path))}).",
                file=sys.stderr,
            )
            return 130
    print(summary_table(rows))
    n_done = sum(r["status"] == "done" for r in rows)
    print(f"{n_done} done, {len(rows) - n_done} failed")
    for line in failed:
        print(f"  {line}", file=sys.stderr)
    return 1 if failed else 0


def _note_measured_otherwise(store: Store, suite: Suite, again: str) -> None:
    """Say (on stderr) how many finished runs were measured with other ``[metrics]`` options:
    metric options are not part of a run's hash, so they are re-evaluated, not retrained."""
    stale = sum(
        _measured_otherwise(r["config"], suite) for r in store.runs(suite=suite.name, status="done")
    )
    if stale:
        print(
            f"note: {stale} finished run(s) were measured with other [metrics] options; "
            f"`aebench eval --store {shlex.quote(str(store.path))} --suite {again}` "
            "re-evaluates them from their weights",
            file=sys.stderr,
        )


class _Progress:
    """The suite's progress bar; with one local run at a time it names the run in progress."""

    def __init__(self, name: str, total: int, quiet: bool, named: bool) -> None:
        self.bar = tqdm(total=total, desc=name, unit="run", disable=quiet, file=sys.stderr)
        self.named = named

    def started(self, cfg: RunConfig) -> None:
        if self.named:
            self.bar.set_description(cfg.run_name)


def _execute(
    store: Store, todo: list[RunConfig], execute: Executor, progress: _Progress
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Hand ``todo`` to ``execute`` and record each result as it comes: the summary rows, the
    failures' lines, and whether the user interrupted (in-flight runs are then marked so;
    queued ones stay pending for a resume)."""
    by_hash = {c.config_hash: c for c in todo}
    ids: dict[str, int] = {}  # runs started and not yet finished

    def started(cfg: RunConfig, out: Path) -> None:
        ids[cfg.config_hash] = store.mark_running(cfg, environment(cfg.train.device), artifacts=out)
        progress.started(cfg)

    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    interrupted = False
    # each config carries its resolved model options, so a worker hashes it without the
    # registry (a plugin's model is known there only once its file is loaded)
    work = [(cfg.pinned(), store.artifacts_dir(cfg)) for cfg in todo]
    with progress.bar, executors.sigterm_as_interrupt():
        try:
            # closing: leaving the loop early stops the executor's workers right away
            with closing(execute(work, started)) as results:
                for result in results:
                    cfg = by_hash[result.config_hash]
                    store.finish(
                        ids.pop(result.config_hash), result.status, result.scores,
                        result.history, result.error, result.environment, result.evaluations,
                        weights_sha256=result.weights_sha256,
                    )  # fmt: skip
                    if result.status == "interrupted":
                        interrupted = True
                        break
                    rows.append({"run": cfg.run_name, "status": result.status, **result.scores})
                    if result.status != "done":
                        failed.append(f"{cfg.run_name}: {result.status}: {result.error}")
                    progress.bar.update(1)
        except KeyboardInterrupt:
            interrupted = True
        if interrupted:
            for run_id in ids.values():
                store.finish(run_id, "interrupted", error="interrupted by the user")
    return rows, failed, interrupted
