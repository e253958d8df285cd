"""One grid point as a task: :func:`run_one` trains, evaluates and writes the run folder, and
returns a plain :class:`RunResult`. It is a pure function of its
:class:`~aebench.config.run.RunConfig`, so an executor (:mod:`.executors`) only decides *where*
it runs: in this process, in worker processes, or as Ray tasks."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from aebench import data
from aebench.config.run import RunConfig
from aebench.core.errors import UsageError
from aebench.core.plugins import load_env_plugins
from aebench.store.artifacts import weights_sha256
from aebench.store.run_folder import HISTORY, WEIGHTS
from aebench.training.divergence import DivergenceError
from aebench.training.trainer import TrainingInterrupted

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
    #: the run folder's files by name, when the run trained away from the driver (a Ray task
    #: on another node): the driver writes them into the run folder (``write_run_files``)
    files: dict[str, bytes] = field(default_factory=dict)


def flatten_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[{epoch, train: {...}, test: {...}}]`` → ``[{epoch, train_loss, test_loss, ...}]``; a
    later stage's keys are prefixed with its name (``second.test_loss``, ``second.step``)."""
    flat = []
    for entry in history:
        # a later stage's rows carry its name: its epochs count from 1 again, so its step and
        # seconds would otherwise replace the first stage's under the same epoch in the store
        stage = f"{entry['stage']}." if entry.get("stage") else ""
        row: dict[str, Any] = {
            "epoch": entry["epoch"],
            f"{stage}step": entry.get("step"),
            f"{stage}seconds": entry.get("seconds"),
        }
        for split in ("train", "test"):
            for key, value in entry.get(split, {}).items():
                row[f"{stage}{split}_{key}"] = value
        flat.append(row)
    return flat


def run_one(
    cfg: RunConfig,
    out_dir: str | os.PathLike[str],
    threads: int | None = None,
    quiet: bool = True,
    dataset: data.ImageData | None = None,
) -> RunResult:
    """Train and evaluate one grid point; never raises for a run that fails or diverges.
    ``dataset`` is the run's data when the caller already has it (a Ray task gets it from the
    object store); else it is loaded from ``cfg.data_dir``."""
    # deferred: single_run loads torchvision (core.images), and the runner imports this module
    # on the path where `aebench run` refuses a bad suite in one line
    from aebench.experiments.single_run import (
        evaluate_run,
        run_environment,
        train_run,
        trained_run,
    )

    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    result = RunResult(cfg.config_hash, "done")  # resolved by the driver: no plugin needed
    try:
        load_env_plugins()  # in a worker process: the driver's plugin files, before the model
        # resume=True: a checkpoint left by an interrupted attempt of this very config (same
        # hash, same folder) is continued; the trainer refuses one of another run.
        # overwrite=True: the store, not the folder, says whether this run still has to run.
        if dataset is None:
            dataset = data.load(cfg.dataset, cfg.data_dir)
        run = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, quiet=quiet))
        # a run stopped while it was evaluated is evaluated again, not trained again
        trained = trained_run(cfg, out_dir)
        model, run_dir = trained or train_run(
            run, out_dir, resume=True, overwrite=True, dataset=dataset
        )
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
