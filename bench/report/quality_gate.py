"""The quality gate of CI (``aebench gate quality``): a fixed small suite's fresh runs against a
committed tidy CSV of per-seed metrics (``tests/benchmarks/quality_baseline.csv``).

:func:`compare_quality` runs :func:`aebench.report.baseline.compare`: Welch's t-test over seeds
per model and metric, flagged only when significant *and* larger than the tolerance. The
baseline is written when there is none (exit 0, saying where) and rewritten only when asked
(``--update-baseline``). What would let the gate pass without testing anything — a baseline
value that is not a finite number, an unreadable or unbounded file, a comparison in which no
model × metric was compared — is refused in one line (exit 2). The speed trend beside it is
:mod:`aebench.perf.trend`.
"""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aebench.core.atomic import read_input_text
from aebench.core.errors import UsageError
from aebench.core.values import describe
from aebench.report.baseline import compare

QUALITY_METRICS = ("recon_mse", "ssim", "kl", "nll_iw", "fid", "precision", "recall")
QUALITY_COLUMNS = ("label", "dataset", "arch", "seed", "metric", "value")


def quality_frame(data: Any, metrics: tuple[str, ...] = QUALITY_METRICS) -> pd.DataFrame:
    """A report's runs as tidy per-seed rows (label, dataset, arch, seed, metric, value)."""
    runs = data.runs
    present = [m for m in metrics if m in runs]
    tidy = runs.melt(id_vars=["label", "dataset", "arch", "seed"], value_vars=present,
                     var_name="metric", value_name="value")  # fmt: skip
    tidy = tidy.dropna(subset=["value"]).sort_values(["label", "seed", "metric"], kind="stable")
    return tidy[list(QUALITY_COLUMNS)].reset_index(drop=True)


def broken_value(data: Any, metrics: tuple[str, ...] = QUALITY_METRICS) -> str | None:
    """The first gate metric that is infinite in a run, or NaN in some runs of a model and a
    number in others ("vae recon_mse, seed 1"), else None. Such a suite is no baseline: the gate
    would refuse its inf, and a NaN seed would silently shrink the model's sample. A metric NaN
    in every run of a model does not apply to it (the AE's KL) and is left out."""
    runs = data.runs
    for m in (m for m in metrics if m in runs):
        values = runs[m].astype(float)
        keys = [runs[k] for k in ("label", "dataset", "arch")]
        for key, group in values.groupby(keys, sort=False):
            finite = group.map(math.isfinite)
            if finite.all() or group.isna().all():
                continue
            seed = runs.loc[group.index[~finite.to_numpy()][0], "seed"]
            return f"{' · '.join(map(str, key))} {m}, seed {seed}"
    return None


def _first_bad(tidy: pd.DataFrame, column: str, ok: pd.Series) -> str | None:
    """Where ``ok`` first fails, as "line N: COLUMN 'cell'" (line 1 is the header), else None."""
    if bool(ok.all()):
        return None
    row = int(np.flatnonzero(~ok.to_numpy(dtype=bool))[0])
    return f"line {row + 2}: {column} {describe(tidy[column].iloc[row])}"


def _float_or_nan(cell: Any) -> float:
    try:
        return float(cell)
    except (TypeError, ValueError):
        return math.nan


def _quality_cells(path: Path, tidy: pd.DataFrame) -> pd.Series:
    """The ``value`` column as floats, after checking every cell: no blank key, a whole-number
    seed, a metric the gate knows (another name could clash with a key column in the pivot),
    a finite number, and one row per run and metric."""
    values = tidy["value"].map(_float_or_nan).astype(float)
    checks = [
        (c, tidy[c].notna() & (tidy[c].str.strip() != ""), "is blank") for c in QUALITY_COLUMNS[:5]
    ]
    checks.append(("seed", tidy["seed"].str.strip().str.fullmatch(r"\d+"),
                   "is not a whole number"))  # fmt: skip
    checks.append(("metric", tidy["metric"].isin(QUALITY_METRICS), "is not a gate metric"))
    checks.append(("value", values.map(math.isfinite), "is not a finite number"))
    # a second value for one run and metric: the pivot would average the two, silently
    again = tidy.duplicated(subset=list(QUALITY_COLUMNS[:5]), keep="first")
    checks.append(("metric", ~again, "repeats an earlier row's label, dataset, arch and seed"))
    for column, ok, problem in checks:
        bad = _first_bad(tidy, column, ok)
        if bad is not None:
            raise UsageError(f"quality baseline {path} {bad} {problem}")
    return values


def read_quality_baseline(path: Path, like: Any) -> Any:
    """The committed CSV as :class:`~aebench.report.collect.ReportData` with ``like``'s keys.

    Read as text from a regular file of bounded size, every cell as a string (keys match the
    store's text labels), then checked cell by cell (:func:`_quality_cells`): a CSV with no
    rows, a blank or NaN value or a text cell in ``value`` is one line, not a silent pass or a
    traceback.
    """
    text = read_input_text(path, "quality baseline")
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except ValueError as err:  # empty, ragged, bad quoting (pandas' errors are ValueErrors)
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UsageError(f"cannot read quality baseline {path}: {reason}") from None
    missing = [c for c in QUALITY_COLUMNS if c not in raw]
    if missing:
        raise UsageError(f"quality baseline {path} lacks column {missing[0]!r}")
    tidy = raw[list(QUALITY_COLUMNS)].copy()
    if tidy.empty:
        raise UsageError(f"quality baseline {path} holds no values")
    tidy["value"] = _quality_cells(path, tidy)
    wide = tidy.pivot_table(
        index=["label", "dataset", "arch", "seed"], columns="metric", values="value"
    ).reset_index()
    wide.columns.name = None
    metrics = sorted(set(tidy["metric"]))
    return dataclasses.replace(like, runs=wide, metrics=metrics, suite=f"baseline {path.name}")


def compare_quality(current: Any, path: Path, alpha: float, tolerance: float) -> Any:
    """Welch's test per model and metric: the fresh runs against the committed CSV.

    Rows are matched on the model label, and also on dataset and arch where the two sides
    together hold more than one: a baseline of another dataset then matches nothing (and the
    gate refuses to pass on it) instead of being compared as if it were this one."""
    base = read_quality_baseline(path, current)
    both = pd.concat([current.runs[["dataset", "arch"]], base.runs[["dataset", "arch"]]])
    keys = ["label"] + [k for k in ("dataset", "arch") if both[k].astype(str).nunique() > 1]
    current = dataclasses.replace(current, keys=list(dict.fromkeys([*current.keys, *keys])))
    metrics = [m for m in QUALITY_METRICS if m in current.metrics or m in base.metrics]
    return compare(current, base, metrics, alpha, tolerance, str(path))
