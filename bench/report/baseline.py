"""Compare a report against a baseline: per model and metric, did it get better or worse?

A change is flagged only when it is both *significant* (Welch's t-test over seeds, p < alpha)
and *material* (|Δ| larger than ``tolerance`` × |baseline mean|): significance alone flags
negligible shifts once there are many seeds, size alone flags seed noise. A flagged change in a
metric's worse direction is a regression; CI fails on any (exit code 1).

Edge cases, decided explicitly rather than left to NaNs from scipy:

* fewer than two runs on either side: no variance estimate, so no test (status ``untested``);
* zero variance on both sides (deterministic metrics): the means either equal (p = 1) or differ
  for certain (p = 0);
* a metric with no better direction can be ``changed`` but never regress;
* a metric the baseline measured that this suite records, but that is NaN, infinite or
  absent in any current run of that model (its finite values are fewer than the model's runs),
  is ``non-finite`` and counts as a regression: a model whose numbers broke must not pass a
  gate because the values left to test are too few. A model or metric the current suite has
  no runs or no column for is ``missing``, as before.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aebench.core.errors import UsageError
from aebench.core.statistics import welch_p
from aebench.experiments.claims import RUN_COLUMNS
from aebench.report import collect
from aebench.report.collect import ReportData
from aebench.report.columns import HIGHER, LOWER, headline, info
from aebench.store.database import Store

DEFAULT_ALPHA = 0.05
DEFAULT_TOLERANCE = 0.05

REGRESSED, IMPROVED, CHANGED, SAME = "regressed", "improved", "changed", "same"
UNTESTED, NEW, MISSING = "untested", "new", "missing"
NONFINITE = "non-finite"  #: measured in the baseline, not finite in some current run
#: the statuses that fail a gate (and make ``aebench report --baseline`` exit 1)
FAILING = (REGRESSED, NONFINITE)


@dataclass
class Comparison:
    """The delta table: one row per (row key, metric) present on either side."""

    frame: pd.DataFrame
    keys: list[str]
    baseline_name: str
    alpha: float
    tolerance: float

    @property
    def regressions(self) -> pd.DataFrame:
        return self.frame[self.frame["status"].isin(FAILING)]

    @property
    def regressed(self) -> bool:
        return not self.regressions.empty

    @property
    def compared(self) -> int:
        """How many (row key, metric) pairs were actually tested: ``new`` and ``missing`` rows
        have one side only and ``untested`` ones too few seeds, so none of them compared."""
        return int((~self.frame["status"].isin([UNTESTED, NEW, MISSING])).sum())


def classify(
    metric: str, base: float, current: float, p: float, alpha: float, tolerance: float
) -> str:
    """The status of one change: regressed / improved / changed / same / untested."""
    if not math.isfinite(p):
        return UNTESTED
    delta = current - base
    material = abs(delta) > tolerance * abs(base) if base != 0 else delta != 0
    if p >= alpha or not material:
        return SAME
    direction = info(metric).better
    if direction == LOWER:
        return REGRESSED if delta > 0 else IMPROVED
    if direction == HIGHER:
        return REGRESSED if delta < 0 else IMPROVED
    return CHANGED


def compare(
    current: ReportData,
    baseline: ReportData,
    metrics: Sequence[str] | None = None,
    alpha: float = DEFAULT_ALPHA,
    tolerance: float = DEFAULT_TOLERANCE,
    baseline_name: str | None = None,
) -> Comparison:
    """Per row key and metric: baseline and current mean ± std, Δ, p and a status.

    ``metrics`` defaults to the headline metrics either side recorded. Rows are matched on the
    current report's key columns (model label, plus dataset/arch where they vary).
    """
    keys = list(current.keys)
    known = set(current.metrics) | set(baseline.metrics)
    unknown = [m for m in metrics or () if m not in known]
    if unknown:
        raise UsageError(
            f"metric {unknown[0]!r} is in neither the report nor the baseline; "
            f"recorded metrics: {', '.join(sorted(known))}"
        )
    if metrics is None:
        have = set(current.metrics) | set(baseline.metrics)
        metrics = [m for m in headline() if m in have]
    cur_groups = _values(current.runs, keys)
    base_groups = _values(baseline.runs, keys)
    cur_runs = {  # how many current runs each row key has
        k if isinstance(k, tuple) else (k,): n
        for k, n in current.runs.groupby(keys, sort=False, dropna=False).size().items()
    }
    order = list(dict.fromkeys([*cur_groups, *base_groups]))
    records = []
    for key in order:
        for m in metrics:
            a = base_groups.get(key, {}).get(m, [])
            b = cur_groups.get(key, {}).get(m, [])
            base_mean = float(np.mean(a)) if a else math.nan
            cur_mean = float(np.mean(b)) if b else math.nan
            if not a and not b:
                continue
            if not a:
                status, p = NEW, math.nan
            elif not cur_runs.get(key) or m not in current.runs:
                status, p = MISSING, math.nan  # the model or the metric is not in this suite
            elif len(b) < cur_runs[key]:
                status, p = NONFINITE, math.nan
            else:
                p = welch_p(a, b)
                status = classify(m, base_mean, cur_mean, p, alpha, tolerance)
            delta = cur_mean - base_mean
            records.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "metric": m,
                    "baseline_mean": base_mean,
                    "baseline_std": float(np.std(a, ddof=1)) if len(a) > 1 else math.nan,
                    "baseline_n": len(a),
                    "current_mean": cur_mean,
                    "current_std": float(np.std(b, ddof=1)) if len(b) > 1 else math.nan,
                    "current_n": len(b),
                    "delta": delta,
                    "rel_delta": delta / abs(base_mean) if base_mean else math.nan,
                    "p_value": p,
                    "status": status,
                }
            )
    columns = [*keys, "metric", "baseline_mean", "baseline_std", "baseline_n", "current_mean",
               "current_std", "current_n", "delta", "rel_delta", "p_value", "status"]  # fmt: skip
    frame = pd.DataFrame.from_records(records, columns=columns)
    return Comparison(frame, keys, baseline_name or baseline.suite, alpha, tolerance)


def regression_line(row: pd.Series, keys: list[str]) -> str:
    """One printed line for a failing (row key, metric) of a comparison."""
    key = " · ".join(str(row[k]) for k in keys)
    base = f"baseline {row['baseline_mean']:.4g} ± {row['baseline_std']:.2g}"
    if row["status"] == NONFINITE:
        return (f"REGRESSION {key} {row['metric']}: {base}, now not finite (NaN, inf or not "
                f"measured) in some runs, {row['current_n']} finite value(s)")  # fmt: skip
    return (f"REGRESSION {key} {row['metric']}: {base}, now {row['current_mean']:.4g} ± "
            f"{row['current_std']:.2g}, p = {row['p_value']:.2g}")  # fmt: skip


def _values(runs: pd.DataFrame, keys: list[str]) -> dict[tuple, dict[str, list[float]]]:
    """``{row key: {metric: [finite values over seeds]}}``."""
    out: dict[tuple, dict[str, list[float]]] = {}
    for key, group in runs.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        out[key] = {
            m: [float(v) for v in group[m] if v is not None and math.isfinite(float(v))]
            for m in group.columns
            if m not in RUN_COLUMNS
        }
    return out


def load_baseline(spec: str | os.PathLike[str], current: ReportData) -> tuple[ReportData, str]:
    """Resolve ``--baseline``: a path to another store, else a suite in the current store.

    Another store must hold finished runs of the current suite (the same suite run at an older
    commit): its newest other suite may be another dataset or budget, and comparing with it
    would report regressions that are none, so that is a one-line :class:`UsageError`.
    """
    path = Path(spec)
    if path.exists():
        with Store.open(path, create=False, readonly=True) as other:
            suites = list(dict.fromkeys(r["suite"] for r in other.runs(status="done")))
            if current.suite not in suites:
                raise UsageError(
                    f"baseline store {path} has no finished runs of suite {current.suite!r} "
                    f"(its suites: {', '.join(suites) or 'none'}); a baseline store is "
                    "compared suite by suite"
                )
            return collect.load(other, current.suite), f"{path} ({current.suite})"
    if os.sep in str(spec) or path.suffix in (".sqlite", ".db"):
        raise UsageError(f"baseline store {spec} does not exist")
    data = collect.load(current.store_path, str(spec))
    return data, f"suite {spec}"
