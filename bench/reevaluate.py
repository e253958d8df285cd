"""``aebench eval --store``: metric families that finished runs lack, or that were computed
with other options, evaluated from the saved weights.

A run's hash covers only what changes its weights; each metric family's results are stored with
the options they were computed with (the store's ``evaluations``). So a family added after a
suite ran (a plugin, a new built-in), or a suite whose ``[metrics]`` changed, reaches the
finished runs without retraining: each ``done`` run's weights are loaded from its artifacts
folder, the families with no record, or with a record of other options, are evaluated (with the
run's seed and batch size: the runner's own conversion), and their rows are replaced in one
transaction per run. Other families' rows and the training history are never touched, so a kill
loses at most the run in flight and the same command continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from bench.errors import UsageError


def families_to_evaluate(
    recorded: dict[str, str], model: Any, options: Any, only: tuple[str, ...] | None
) -> list[str]:
    """Families (``only``, else all registered) that apply to ``model`` and whose recorded
    options key is absent or differs from the one ``options`` give."""
    from bench.metrics.family import FAMILIES, family_names

    wanted = []
    for name in only or family_names():
        family = FAMILIES.get(name)
        if family.applies_to(model) and recorded.get(name) != family.options_key(options):
            wanted.append(name)
    return wanted


def reevaluate_store(
    store_path: str | os.PathLike[str] | None,
    suite: str | None = None,
    only: tuple[str, ...] | None = None,
    device: str = "cpu",
    data_dir: str | None = None,
) -> int:
    """Evaluate what the finished runs of ``store_path`` (of ``suite``, if given) are missing;
    prints one line per run evaluated; returns the number of runs that gained metrics."""
    from bench import data
    from bench.config import RunConfig
    from bench.metrics.evaluation import evaluate
    from bench.metrics.family import FAMILIES, family_names
    from bench.report.collect import resolve_artifacts
    from bench.runio import load_run
    from bench.store import Store
    from bench.suite import load_suite
    from bench.trainer import resolve_device

    known = family_names()
    metrics = None  # the metric options: a loadable suite's [metrics], else each run's own
    if suite is not None:
        try:
            loaded = load_suite(suite)
        except UsageError:
            loaded = None  # a suite known only by its name in the store
        if loaded is not None:
            suite, metrics = loaded.name, loaded.metrics
    for name in only or ():
        if name not in known:
            raise UsageError(f"unknown metric family {name!r}; choose from: {', '.join(known)}")
    target = resolve_device(device)
    datasets: dict[tuple[str, str | None], data.ImageData] = {}
    updated = 0
    with Store.open(store_path, create=False) as store, store.lock():
        runs = store.runs(suite=suite, status="done")
        if suite is not None and not runs:
            raise UsageError(f"store {store.path} has no finished runs in suite {suite!r}")
        for row in runs:
            try:
                cfg = RunConfig.from_dict(row["config"])
            except (TypeError, ValueError, KeyError) as err:
                raise UsageError(f"run {row['id']} has an unreadable config: {err}") from None
            folder = resolve_artifacts(row.get("artifacts"), store.path)
            if not folder:
                raise UsageError(f"run {row['id']} ({row['run_name']}) has no artifacts folder")
            model, _ = load_run(folder, map_location=target)
            options = cfg.evaluation_options(metrics)
            todo = families_to_evaluate(store.evaluations(row["id"]), model, options, only)
            if not todo:
                continue
            key = (cfg.dataset, data_dir or cfg.data_dir)
            if key not in datasets:
                datasets[key] = data.load(*key)
            wanted = dataclasses.replace(options, families=tuple(todo))
            scores = evaluate(model, datasets[key], wanted)
            done = {
                name: (FAMILIES.get(name).key_names, options_key)
                for name, options_key in scores["meta"]["evaluations"].items()
            }
            values = {k: v for k, v in scores.items() if k != "meta"}
            # measured with a suite's new [metrics]: the stored config says so from now on
            config = dataclasses.replace(cfg, metrics=metrics).to_json() if metrics else None
            store.record_evaluation(row["id"], values, done, config)
            updated += 1
            print(f"{row['run_name']}: evaluated {', '.join(todo)}")
    return updated
