"""Run a suite: expand the grid, skip what the store has done, run the rest, record everything.

``run_one`` is a pure function of a :class:`~aebench.suite.RunConfig` (train, evaluate, write the
run folder) that returns a plain :class:`RunResult`; executors only decide *where* it runs (in
this process, in worker processes, or as Ray tasks). Only the driver writes the store.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aebench.errors import UsageError
from aebench.suite import RunConfig, Suite

EXECUTORS = ("local", "ray")
WORKER_DIED = "its worker process died (killed, or out of memory)"


@dataclass
class RunResult:
    """What one run produced: status, flat scores, flattened history, error text, seconds."""

    config_hash: str
    status: str  # done | failed | diverged
    scores: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    environment: dict[str, Any] = field(default_factory=dict)
    evaluations: dict[str, str] = field(default_factory=dict)  #: family → its options key
    weights_sha256: str | None = None  #: of the weights file the run wrote


def flatten_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[{epoch, train: {...}, test: {...}}]`` → ``[{epoch, train_loss, test_loss, ...}]``."""
    flat = []
    for entry in history:
        row: dict[str, Any] = {
            "epoch": entry["epoch"],
            "step": entry.get("step"),
            "seconds": entry.get("seconds"),
        }
        for split in ("train", "test"):
            for key, value in entry.get(split, {}).items():
                row[f"{split}_{key}"] = value
        flat.append(row)
    return flat


def run_one(
    cfg: RunConfig, out_dir: str | os.PathLike[str], threads: int | None = None, quiet: bool = True
) -> RunResult:
    """Train and evaluate one grid point; never raises for a run that fails or diverges."""
    import torch

    from aebench import data
    from aebench.runio import HISTORY, WEIGHTS
    from aebench.store_artifacts import weights_sha256
    from aebench.trainer import DivergenceError, TrainingInterrupted
    from aebench.training import evaluate_run, run_environment, train_run

    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    result = RunResult(cfg.config_hash, "done")
    try:
        # resume=True: a checkpoint left by an interrupted attempt of this very config (same
        # hash, same folder) is continued; the trainer refuses one of another run.
        # overwrite=True: the store, not the folder, says whether this run still has to run.
        dataset = data.load(cfg.dataset, cfg.data_dir)
        run = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, quiet=quiet))
        model, run_dir = train_run(run, out_dir, resume=True, overwrite=True, dataset=dataset)
        result.environment = run_environment(model.device)
        result.weights_sha256 = weights_sha256(run_dir / WEIGHTS)
        scores = evaluate_run(model, dataset, run_dir, cfg.evaluation_options())
        result.scores = {k: v for k, v in scores.items() if k != "meta"}
        result.evaluations = dict(scores["meta"]["evaluations"])
        history = json.loads((run_dir / HISTORY).read_text())
        result.history = flatten_history(history)
    except DivergenceError as err:
        result.status, result.error = "diverged", str(err)
    except TrainingInterrupted as err:
        result.status, result.error = "interrupted", str(err)
    except UsageError as err:
        result.status, result.error = "failed", str(err)
    except Exception as err:  # a crash in one run must not stop the suite
        result.status = "failed"
        result.error = f"{type(err).__name__}: {err}".splitlines()[0]
        if not quiet:
            traceback.print_exc(file=sys.stderr)
    result.seconds = time.perf_counter() - started
    return result


Started = Callable[[RunConfig, Path], None]
#: ``execute(work, started)`` runs each (config, artifacts folder) pair, calls ``started`` in the
#: driver as each run is handed to a worker, and yields results as runs finish.
Executor = Callable[[list[tuple[RunConfig, Path]], Started], Iterator[RunResult]]


def step_cost(cfg: RunConfig, image_shape: tuple[int, int, int]) -> int:
    """A relative cost of one training step: parameters × update phases (each phase is one
    backward pass over the shared graph). Good enough to tell a VAE-GAN from a VAE."""
    from aebench import models

    try:
        model = models.create(cfg.model, **cfg.model_kwargs(image_shape))
    except Exception:  # a config that cannot build fails in its own run, with its message
        return 0
    return sum(p.numel() for p in model.parameters()) * len(model.phases())


def plan_parallel(configs: list[RunConfig]) -> list[RunConfig]:
    """Prepare runs that are about to fan out over workers; returns them in the order to start.

    Each dataset's domain feature net is trained (or found cached) once here: workers would
    otherwise all train the same net at the same moment, each on a fraction of the cores. The
    order is longest first (by :func:`step_cost` × budget), so the slowest runs do not start last
    and leave the other workers idle at the end. A dataset that fails to load is left alone:
    its runs fail with their own message.
    """
    from aebench import data
    from aebench.metrics import features

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
    from aebench import data
    from aebench.metrics.evaluation import planned_memory_problem
    from aebench.metrics.generation import SAMPLING_FAMILIES

    shapes: dict[tuple[str, str | None], tuple[int, int, int] | None] = {}
    for cfg in configs:
        options = cfg.evaluation_options()
        if not set(SAMPLING_FAMILIES) & set(options.families or ()):
            continue
        where = (cfg.dataset, cfg.data_dir)
        if where not in shapes:
            try:
                shapes[where] = data.load(*where).image_shape
            except Exception:  # the runs on it fail with this, each in its own row
                shapes[where] = None
        if (shape := shapes[where]) is None:
            continue
        try:
            problem = planned_memory_problem(options, shape, cfg.model, cfg.train.device)
        except UsageError:
            continue
        if problem:
            raise UsageError(f"{suite.source}: metrics.n_samples: {problem} (run {cfg.run_name})")


def summary_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: run name, status, seconds and the headline metrics."""
    from aebench.metrics.family import headline_keys

    cols = ["run", "status", *[h for h in headline_keys() if any(h in r for r in rows)]]
    table = [cols]
    for r in rows:
        cells = [r["run"], r["status"]]
        for h in cols[2:]:
            v = r.get(h)
            cells.append(
                "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"
            )
        table.append(cells)
    widths = [max(len(str(row[i])) for row in table) for i in range(len(cols))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in table
    )


def _measured_otherwise(config: Any, suite: Suite) -> bool:
    """Whether a stored run's metric options differ from the suite's ``[metrics]``."""
    from aebench.metrics.options import MetricOptions

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
) -> int:
    """Run every not-yet-done grid point of ``suite``; returns the process exit code (0 when
    every run is done, 1 when any failed or diverged). ``suite_arg`` is how the user named the
    suite (a shipped name or a TOML path), for the resume hint."""
    from tqdm.auto import tqdm

    from aebench import executors
    from aebench.store import Store
    from aebench.store_lock import refuse_if_held

    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    if executor == "ray":
        executors.require_ray()  # before the store: no pending rows for a suite that cannot run
    configs = suite.expand()
    refuse_if_held(store_path)  # before opening: a refused writer leaves the store untouched
    refuse_unfit_evaluations(suite, configs)  # not hours later, after training
    with Store.open(store_path) as store, store.lock():
        store.recover_stale()
        done = store.done_hashes(suite.name)
        todo = [c for c in configs if c.config_hash not in done]
        stale = sum(
            _measured_otherwise(r["config"], suite)
            for r in store.runs(suite=suite.name, status="done")
        )
        if stale:  # metric options are not part of a run's hash: re-evaluate, do not retrain
            hint = shlex.quote(suite_arg or suite.name)
            print(
                f"note: {stale} finished run(s) were measured with other [metrics] options; "
                f"`aebench eval --store {shlex.quote(str(store.path))} --suite {hint}` "
                "re-evaluates them from their weights",
                file=sys.stderr,
            )
        if not todo:
            print(f"suite {suite.name!r}: all {len(configs)} runs are already done in {store.path}")
            return 0
        store.add_pending(todo)
        print(
            f"suite {suite.name!r}: {len(todo)} of {len(configs)} runs to do "
            f"({len(configs) - len(todo)} already done) → {store.path}"
        )
        from aebench.store import environment

        if jobs > 1 or executor == "ray":
            todo = plan_parallel(todo)
        work = [(cfg, store.artifacts_dir(cfg)) for cfg in todo]
        execute = (
            executors.local_executor(jobs, quiet=True)
            if executor == "local"
            else executors.ray_executor(ray_address, quiet=True)
        )
        by_hash = {c.config_hash: c for c in todo}
        ids: dict[str, int] = {}  # runs started and not yet finished

        def started(cfg: RunConfig, out: Path) -> None:
            env = environment(cfg.train.device)
            ids[cfg.config_hash] = store.mark_running(cfg, env, artifacts=out)
            if executor == "local" and jobs == 1:
                bar.set_description(cfg.run_name)

        rows = []
        failed = []
        interrupted = False
        with (
            tqdm(
                total=len(work), desc=suite.name, unit="run", disable=quiet, file=sys.stderr
            ) as bar,
            executors.sigterm_as_interrupt(),
        ):
            try:
                # closing: leaving the loop early stops the executor's workers right away
                with closing(execute(work, started)) as results:
                    for result in results:
                        cfg = by_hash[result.config_hash]
                        store.finish(
                            ids.pop(result.config_hash),
                            result.status,
                            result.scores,
                            result.history,
                            result.error,
                            result.environment,
                            result.evaluations,
                            weights_sha256=result.weights_sha256,
                        )
                        if result.status == "interrupted":
                            interrupted = True
                            break
                        rows.append({"run": cfg.run_name, "status": result.status, **result.scores})
                        if result.status != "done":
                            failed.append(f"{cfg.run_name}: {result.status}: {result.error}")
                        bar.update(1)
            except KeyboardInterrupt:
                interrupted = True
            if interrupted:
                for run_id in ids.values():  # runs in flight; queued ones stay pending
                    store.finish(run_id, "interrupted", error="interrupted by the user")
        if interrupted:
            print(
                f"suite {suite.name!r} interrupted; finished runs are kept. Resume with the "
                f"same command (aebench run {shlex.quote(suite_arg or suite.name)} "
                f"--store {shlex.quote(str(store.path))}).",
                file=sys.stderr,
            )
            return 130
    print(summary_table(rows))
    n_done = sum(r["status"] == "done" for r in rows)
    print(f"{n_done} done, {len(rows) - n_done} failed")
    for line in failed:
        print(f"  {line}", file=sys.stderr)
    print_claims(store_path, suite)
    return 1 if failed else 0


def print_claims(store_path: str | os.PathLike[str] | None, suite: Suite) -> None:
    """The claims' verdicts on every finished run of the suite (this run's and earlier)."""
    from aebench.claims import BUILTIN, check
    from aebench.report import collect

    try:
        data = collect.load(store_path, suite.name)
    except UsageError:
        return  # no finished run to test anything on
    verdicts = check(data.runs, (*BUILTIN, *suite.claims), [k for k in data.keys if k != "label"])
    if verdicts:
        print(f"claims ({len(data.runs)} finished runs; Welch's t-test over seeds, alpha 0.05):")
        for v in verdicts:
            print(f"  {v.line()}")
