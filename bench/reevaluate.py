"""``aebench eval --store``: metric families a store's finished runs lack, from saved weights.

A metric family added after a suite ran (a plugin, or a new built-in) reaches the finished runs
without retraining: each ``done`` run's weights are loaded from its artifacts folder, the
families that have none of their keys in the store yet are evaluated with the run's own
options (its suite's ``[metrics]``, its seed and batch size: the same conversion the runner
uses), and the new rows go into the store in one transaction per run. Existing rows — the
training history, earlier metrics — are never touched, so a kill loses at most the run in
flight and running the same command again continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from bench.errors import UsageError


def missing_families(have: set[str], model: Any, only: tuple[str, ...] | None) -> list[str]:
    """Families (``only``, else all registered) that apply to ``model`` and have none of their
    keys in ``have``."""
    from bench.metrics.family import FAMILIES, family_names

    names = only or family_names()
    wanted = []
    for name in names:
        family = FAMILIES.get(name)
        if family.applies_to(model) and not set(family.key_names) & have:
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
    from bench.metrics.evaluation import evaluate
    from bench.metrics.family import family_names
    from bench.report.collect import resolve_artifacts
    from bench.runio import load_run
    from bench.store import Store
    from bench.suite import RunConfig
    from bench.trainer import resolve_device

    known = family_names()
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
            todo = missing_families(set(store.metrics(row["id"])), model, only)
            if not todo:
                continue
            key = (cfg.dataset, data_dir or cfg.data_dir)
            if key not in datasets:
                datasets[key] = data.load(*key)
            options = dataclasses.replace(
                cfg.metrics.for_run(cfg.seed, cfg.batch_size), families=tuple(todo)
            )
            scores = evaluate(model, datasets[key], options)
            added = store.add_metrics(row["id"], {k: v for k, v in scores.items() if k != "meta"})
            updated += 1
            print(f"{row['run_name']}: {', '.join(todo)} ({added} metric rows added)")
    return updated
