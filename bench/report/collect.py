"""Read what a report needs out of a results store, into plain DataFrames.

Everything downstream (tables, figures, baseline) works on :class:`ReportData` only, so it can
be tested without a store and the store is read in exactly one place. Only runs with status
``done`` are reported: a failed or interrupted run has partial numbers that would bias a mean.

Runs are averaged only with runs made and measured the same way: runs of one label trained
with different model options, or measured with different ``[metrics]`` options (the options
each metric family recorded in the store), get those options in their label and so a row of
their own (:mod:`aebench.report.measured`); the header says which metric options differ. Config
values edited by hand into the wrong type (a text budget, a list seed) are shown as stored.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import socket
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from aebench import models
from aebench.config.run import stored_fields
from aebench.core.errors import UsageError
from aebench.experiments.claims import RUN_COLUMNS
from aebench.report.measured import split_by_metric_options
from aebench.report.provenance import packages_line, reevaluation_line, short_commit
from aebench.store.database import Store
from aebench.store.schema import cpu_name

#: Columns that identify a row of the main table (``dataset``/``arch`` only when they vary).
KEY_COLUMNS: tuple[str, ...] = ("label", "dataset", "arch")
_EPOCH_RE = re.compile(r"^epoch-(\d+)$")


@dataclass
class ReportData:
    """The runs of one suite: one row per run, its final metrics, its history, its setting.

    ``runs`` has the columns :data:`~aebench.experiments.claims.RUN_COLUMNS` (``artifacts``: the run
    folder, found from the store's folder; ``label``: the table's row, ``base_label``: the label
    before runs measured with different metric options were split apart, which claims match on) and
    one column per final metric (NaN where a run did not record it). ``history`` is tidy: run_id,
    label, dataset, arch, seed, epoch, metric, value. ``keys`` are the columns that tell the
    table's rows apart (always ``label``; ``dataset``/``arch`` when the suite has several).
    """

    suite: str
    runs: pd.DataFrame
    history: pd.DataFrame
    metrics: list[str]
    keys: list[str]
    header: dict[str, str] = field(default_factory=dict)
    store_path: Path | None = None
    #: metric rows of the store that hold text instead of a number (read as missing)
    non_numeric: int = 0

    @property
    def groups(self) -> list[tuple[Any, ...]]:
        """Row keys in suite order (the order models first appear)."""
        seen: dict[tuple[Any, ...], None] = {}
        for row in self.runs[self.keys].itertuples(index=False):
            seen.setdefault(tuple(row), None)
        return list(seen)

    @property
    def labels(self) -> list[str]:
        """Model labels in suite order: fixes each model's colour in every figure."""
        return list(dict.fromkeys(self.runs["label"]))


def open_store(store: Store | str | os.PathLike[str] | None) -> tuple[Store, bool]:
    """A read-only store handle and whether we opened it (so must close it)."""
    if isinstance(store, Store):
        return store, False
    return Store.open(store, create=False, readonly=True), True


def pick_suite(store: Store, suite: str | None) -> str:
    """``suite`` if it has finished runs; else the suite of the newest finished run.

    Mixing suites in one table would compare runs made under different budgets, so a report is
    always about exactly one suite.
    """
    done = store.runs(status="done")
    suites = list(dict.fromkeys(r["suite"] for r in done))
    if suite is not None:
        if suite not in suites:
            known = ", ".join(suites) or "none"
            raise UsageError(
                f"store {store.path} has no finished runs in suite {suite!r} "
                f"(suites with finished runs: {known})"
            )
        return suite
    if not suites:
        raise UsageError(f"store {store.path} has no finished runs to report")
    return str(done[-1]["suite"])


def load(store: Store | str | os.PathLike[str] | None, suite: str | None = None) -> ReportData:
    """Collect the finished runs of ``suite`` (default: the newest suite) from ``store``."""
    handle, close = open_store(store)
    try:
        name = pick_suite(handle, suite)
        rows = handle.runs(suite=name, status="done")
        frame = handle.metrics_frame(suite=name, status="done")
        non_numeric = handle.count_non_numeric()
        evaluated = [_stored(handle.evaluations, r["id"]) for r in rows]
        again = [_stored(handle.reevaluations, r["id"]) for r in rows]
    finally:
        if close:
            handle.close()
    runs = _runs_frame(rows, frame)
    runs["label"], apart = split_by_metric_options(list(runs["label"]), evaluated)
    metrics = sorted(set(frame.loc[frame["phase"] == "final", "metric"]))
    keys = ["label"] + [k for k in ("dataset", "arch") if runs[k].nunique() > 1]
    history = _history_frame(frame)  # labelled as the table's rows (split labels included)
    history["label"] = history["run_id"].map(dict(zip(runs["run_id"], runs["label"], strict=True)))
    header = {**_header(name, rows), **evaluation_lines(rows, map(_measured_with, evaluated))}
    header.update(reevaluation_line(again))
    return ReportData(
        suite=name,
        runs=runs,
        history=history,
        metrics=metrics,
        keys=keys,
        header={**header, "Metric options": apart} if apart else header,
        store_path=handle.path,
        non_numeric=non_numeric,
    )


def _split_labels(records: list[dict[str, Any]], configs: list[Any]) -> None:
    """Runs of one label trained with different model options (an edited ``[overrides]``, or
    ``beta-vae`` runs from before its default changed) are different models: each run with
    options of its own gets them in its label, ``beta-vae [beta=4.0]``, instead of being
    averaged with the others."""
    texts = []
    for cfg in configs:
        options = cfg.get("model_options") if isinstance(cfg, dict) else None
        options = options if isinstance(options, dict) else {}
        texts.append(", ".join(f"{k}={v}" for k, v in sorted(options.items())))
    by_label: dict[str, set[str]] = {}
    for rec, text in zip(records, texts, strict=True):
        by_label.setdefault(rec["label"], set()).add(text)
    for rec, text in zip(records, texts, strict=True):
        if len(by_label[rec["label"]]) > 1 and text:
            rec["label"] = f"{rec['label']} [{text}]"


def shown(value: Any) -> Any:
    """A stored config value as the report can use it: a number, text or None as it is, any
    other value (a hand-edited list seed, a table where a name belongs) as its JSON text, so
    grouping, sorting and the header show it as stored instead of failing on it."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def _fields(config: Any) -> dict[str, Any]:
    """:func:`stored_fields` with every value but the budget through :func:`shown`."""
    cfg = stored_fields(config)
    return {k: v if k == "budget" else shown(v) for k, v in cfg.items()}


def _budget_text(budget: dict[str, Any]) -> str:
    """``5 epochs``; a budget value that is not a number (edited by hand) is shown as stored."""
    parts = []
    for kind, value in budget.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        parts.append(f"{value:g} {kind}" if number else f"{shown(value)} {kind}")
    return " ".join(parts)


def _runs_frame(rows: list[dict[str, Any]], frame: pd.DataFrame) -> pd.DataFrame:
    records = []
    for r in rows:
        cfg = _fields(r["config"])
        records.append(
            {
                "run_id": r["id"],
                "run_name": r["run_name"],
                "label": str(cfg.get("label") or cfg.get("model") or r["run_name"]),
                "model": cfg.get("model"),
                "dataset": cfg.get("dataset"),
                "arch": cfg.get("arch"),
                "seed": cfg.get("seed"),
                "data_dir": cfg.get("data_dir"),
                "sampler": cfg.get("sampler"),
                "artifacts": r.get("artifacts"),
                "likelihood": _likelihood(r["config"]),
            }
        )
    _split_labels(records, [r["config"] for r in rows])
    for rec in records:  # split by metric options later (load), by model options already
        rec["base_label"] = rec["label"]
    runs = pd.DataFrame.from_records(records, columns=list(RUN_COLUMNS))
    final = frame[frame["phase"] == "final"]
    if not final.empty:
        wide = final.pivot_table(index="run_id", columns="metric", values="value", dropna=False)
        wide.columns.name = None
        runs = runs.merge(wide, left_on="run_id", right_index=True, how="left")
    return runs


def _likelihood(config: Any) -> str:
    """The decoder likelihood family of a stored run's model (``models.likelihood_of``), from
    the options it trained with ("" where the store or the registry cannot say)."""
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        return ""
    options = config.get("resolved_options") or config.get("model_options")
    return models.likelihood_of(config["model"], options if isinstance(options, dict) else {})


def _history_frame(frame: pd.DataFrame) -> pd.DataFrame:
    epochs = frame["phase"].str.extract(_EPOCH_RE, expand=False)
    hist = frame[epochs.notna()].copy()
    hist["epoch"] = epochs[epochs.notna()].astype(int)
    hist["label"] = hist["label"].fillna(hist["model"])
    for col in ("label", "dataset", "arch", "seed"):
        hist[col] = hist[col].map(shown)
    cols = ["run_id", "label", "dataset", "arch", "seed", "epoch", "metric", "value"]
    return hist[cols].reset_index(drop=True)


def _join(values: Any) -> str:
    seen = [str(v) for v in dict.fromkeys(values) if v not in (None, "")]
    return ", ".join(seen) if seen else "unknown"


def _artifact_env(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``environment`` block the trainer wrote into a run folder's ``config.json``."""
    for r in rows:
        path = Path(r.get("artifacts") or "") / "config.json"
        try:
            env = json.loads(path.read_text()).get("environment")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(env, dict):
            return env
    return {}


#: how the two feature spaces see images, for the report header
FEATURES = {
    "inception": "Inception (the TF FID weights); images quantised to uint8 as saved PNGs "
    "would be, grey repeated to RGB, resized to 299x299 by TF1's bilinear resize without "
    "antialias (the convention of published FIDs)",
    "domain": "aebench's domain classifier, trained on the dataset (its FIDs are not "
    "comparable with published Inception FIDs)",
}


def _stored(read: Callable[[int], dict[str, str]], run_id: int) -> dict[str, str]:
    """``read(run_id)`` (the evaluations table's families, or its re-evaluations), or nothing
    for a store without that table or column: the header just says less."""
    try:
        return read(run_id)
    except sqlite3.Error:
        return {}


def _measured_with(evaluations: dict[str, str]) -> dict[str, Any]:
    """One run's metric options, merged over its families' stored option keys."""
    merged: dict[str, Any] = {}
    for options in evaluations.values():
        try:
            merged.update(json.loads(options))
        except (ValueError, TypeError):
            continue  # a damaged row: the report shows what it can
    return merged


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def evaluation_lines(
    rows: list[dict[str, Any]], measured: Iterable[dict[str, Any]]
) -> dict[str, str]:
    """Header lines on what the generation and likelihood numbers mean, from the options each
    run's metric families were measured with (``measured``, one dict per run). A value of the
    wrong type (a hand-edited row) is shown as stored or left out, never an error."""
    measured = list(measured)
    backbones = {str(shown(m["backbone"])) for m in measured if m.get("backbone")}
    out = {}
    if backbones:
        out["Features"] = "; ".join(FEATURES.get(b, b) for b in sorted(backbones))
    iw = {
        (m["iw_k"], m["iw_n"]) for m in measured if _count(m.get("iw_k")) and _count(m.get("iw_n"))
    }
    if iw:
        settings = ", ".join(
            f"K = {k:,} on {n:,} test images (all of them if fewer)" for k, n in sorted(iw)
        )
        out["NLL"] = (
            "nats per image, summed over all pixels; the importance-weighted bound "
            f"(Burda et al. 2016) with {settings}"
        )
    datasets = {str(stored_fields(r["config"]).get("dataset")) for r in rows}
    if datasets & {"mnist-binary", "mnist-binary-static"}:
        out["Binarization"] = (
            "mnist-binary: dynamic (training images redrawn every epoch); "
            "mnist-binary-static: one fixed draw. NLLs from the two must not be compared"
        )
    return out


def _header(suite: str, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Where and how the numbers were made: the report's first lines."""
    cfgs = [_fields(r["config"]) for r in rows]
    budgets = [_budget_text(c["budget"]) for c in cfgs if isinstance(c.get("budget"), dict)]
    seeds = {c.get("seed") for c in cfgs}
    env = _artifact_env(rows)
    hosts = {r.get("host") for r in rows}
    cpu = str(env.get("cpu") or "")
    if cpu in ("", platform.machine()) and hosts == {socket.gethostname()}:
        cpu = cpu_name()  # runs before 2026-12-06 recorded only the architecture; made here
    if cpu and env.get("cpu_capability"):
        cpu = f"{cpu} ({env['cpu_capability']} kernels)"
    ended = sorted(str(r["ended_at"]) for r in rows if r.get("ended_at"))
    date = f"{ended[0][:10]} – {ended[-1][:10]}" if ended else "unknown"
    if ended and ended[0][:10] == ended[-1][:10]:
        date = ended[0][:10]
    commits = [short_commit(str(r["git_commit"])) for r in rows if r.get("git_commit")]
    return {
        "Suite": suite,
        "Datasets": _join(c.get("dataset") for c in cfgs),
        "Architectures": _join(c.get("arch") for c in cfgs),
        "Budget": _join(budgets),
        "Seeds": f"{len(seeds)} ({', '.join(str(s) for s in sorted(seeds, key=str))})",
        "Runs": str(len(rows)),
        "Device": _join(r.get("device") for r in rows),
        "CPU": cpu or "unknown",
        "GPU": str(env.get("gpu") or "none"),
        "Threads": _join(r.get("threads") for r in rows),
        **_resources(rows),
        "Hosts": _join(r.get("host") for r in rows),
        "torch": _join(r.get("torch_version") for r in rows),
        **packages_line(rows),
        "aebench": _join(r.get("aebench_version") for r in rows),
        "Python": _join(r.get("python_version") for r in rows),
        "Git commit": _join(commits),
        "Runs finished": date,
        "Report built": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _resources(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The header's "Reserved per run" line, where an executor recorded what it reserved
    (the Ray executor's CPUs and GPUs per task); absent for local runs."""
    reserved = [r.get("resources") for r in rows if r.get("resources")]
    return {"Reserved per run": _join(reserved)} if reserved else {}
