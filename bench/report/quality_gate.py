"""Regression gates for CI: speed against a machine-normalised baseline, quality by Welch's test.

**Speed.** Absolute times do not travel: the same code runs 2.5-3x slower on one 2-core VM than
on another. So every benchmark of ``tests/benchmarks`` is also recorded as a ratio to a
calibration kernel timed in the same pytest run and dtype — an fp32 1024 x 1024 matmul
(``test_calibration_matmul``, the kernel ``aebench speed`` reports as the machine's matmul
rate). A machine twice as fast halves both times and leaves the ratio alone; a change that makes
one benchmark 2x slower doubles its ratio on any machine. :func:`compare_speed` fails a
benchmark whose ratio grew by more than :data:`SPEED_THRESHOLD` over the committed baseline
(``tests/benchmarks/baseline.json``).

**Quality.** :func:`compare_quality` runs :func:`aebench.report.baseline.compare` (Welch's
t-test over seeds per model and metric, flagged only when significant *and* larger than the
tolerance) between a fixed small suite's fresh runs and a committed tidy CSV of per-seed
metrics (``tests/benchmarks/quality_baseline.csv``).

Both write their baseline when there is none (exit 0, saying where) and rewrite it only when
asked (``--update-baseline``). Both refuse in one line (exit 2) what would let a gate pass
without testing anything: a baseline value that is not a finite positive number (speed) or a
finite number (quality), an unreadable or unbounded file, or a comparison in which no benchmark
or model × metric was actually compared.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from aebench.core.atomic import parse_json_text, read_input_text
from aebench.core.errors import UsageError
from aebench.models.config import describe, is_real
from aebench.report.baseline import compare
from aebench.store.schema import cpu_name

CALIBRATION = "test_case[calibration-matmul]"
#: which pytest-benchmark statistic is compared: the fastest round. On a shared machine noise
#: only ever adds time, so the minimum is the steadiest estimate of what the code costs
#: (measured below: worst run-to-run spread 38 % for the minimum, 57 % for the median).
STATISTIC = "min"
#: flag a benchmark whose calibrated time grew by more than this fraction in the informational
#: trend: above the run-to-run spread of a quiet VM, below a 2x slowdown (docs/ci-gates.md)
SPEED_THRESHOLD = 0.60
QUALITY_METRICS = ("recon_mse", "ssim", "kl", "nll_iw", "fid", "precision", "recall")
QUALITY_COLUMNS = ("label", "dataset", "arch", "seed", "metric", "value")


# -- speed ------------------------------------------------------------------------------------
def positive_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite positive JSON number, else None.

    A bool or a string is not a number here (``float(True)`` and ``float("5")`` would pass), and
    NaN, infinities, zero and negatives are refused: any of them in a time or a baseline would
    make a ratio meaningless, and NaN or a negative one would let any slowdown pass."""
    return float(value) if is_real(value) and value > 0 else None


def read_benchmarks(path: str | Path) -> dict[str, float]:
    """Seconds per benchmark (its pytest node name; the :data:`STATISTIC` of its rounds) from
    a ``--benchmark-json`` file: a regular file of bounded size, every time a finite positive
    JSON number, else a one-line :class:`UsageError`."""
    data = parse_json_text(read_input_text(path, "benchmark results"), f"{path}")
    entries = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise UsageError(f"{path} is not pytest-benchmark JSON (no benchmarks list)")
    rows: dict[str, float] = {}
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        stats = entry.get("stats") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not isinstance(stats, dict):
            raise UsageError(
                f"{path} is not pytest-benchmark JSON (a benchmark without a name or stats)"
            )
        seconds = positive_number(stats.get(STATISTIC))
        if seconds is None:
            shown = describe(stats.get(STATISTIC))
            raise UsageError(
                f"{path}: benchmark {name!r} has no positive {STATISTIC} time ({shown})"
            )
        rows[name] = seconds
    return rows


def normalise(medians: dict[str, float]) -> dict[str, float]:
    """Each benchmark's time divided by the calibration kernel's from the same run."""
    if CALIBRATION not in medians:
        raise UsageError(
            f"the results hold no {CALIBRATION} benchmark to normalise by; run all of "
            "tests/benchmarks (nox -s regress)"
        )
    cal = medians[CALIBRATION]
    return {k: v / cal for k, v in medians.items() if k != CALIBRATION}


@dataclass
class SpeedCheck:
    """Per benchmark: baseline and current calibrated time, their ratio, a status."""

    frame: pd.DataFrame
    threshold: float

    @property
    def failed(self) -> pd.DataFrame:
        return self.frame[self.frame["status"] == "regressed"]

    def lines(self) -> list[str]:
        out = []
        for r in self.frame.itertuples(index=False):
            ratio = f"{r.ratio:.2f}x" if math.isfinite(r.ratio) else "–"
            times = f"{r.current:.4g} vs {r.baseline:.4g} matmuls"
            out.append(f"{r.status.upper():<10} {r.benchmark}: {ratio} ({times})")
        return out


def compare_speed(
    current: dict[str, float], baseline: dict[str, float], threshold: float = SPEED_THRESHOLD
) -> SpeedCheck:
    """Calibrated times (:func:`normalise`) of a run against a baseline's."""
    records = []
    for name in dict.fromkeys([*baseline, *current]):
        base, cur = baseline.get(name, math.nan), current.get(name, math.nan)
        ratio = cur / base if name in baseline and name in current else math.nan
        if name not in baseline:
            status = "new"
        elif name not in current:
            status = "missing"
        else:
            status = "regressed" if ratio > 1 + threshold else "ok"
        records.append({"benchmark": name, "baseline": base, "current": cur, "ratio": ratio,
                        "status": status})  # fmt: skip
    columns = ["benchmark", "baseline", "current", "ratio", "status"]
    return SpeedCheck(pd.DataFrame.from_records(records, columns=columns), threshold)


def calibrated_runs(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median over several runs of each benchmark's calibrated time (each run normalised
    by its own calibration): one slow or fast moment of the machine does not set a baseline."""
    normed = [normalise(r) for r in runs]
    names = dict.fromkeys(k for n in normed for k in n)
    return {k: statistics.median(n[k] for n in normed if k in n) for k in names}


def speed_baseline(runs: list[dict[str, float]]) -> dict[str, Any]:
    """What ``baseline.json`` holds: the calibrated times (median over ``runs``) plus where
    they were measured."""
    cal = statistics.median(r.get(CALIBRATION, math.nan) for r in runs)
    return {
        "what": f"{STATISTIC} time of each tests/benchmarks benchmark / that of the fp32 "
        f"1024x1024 matmul ({CALIBRATION}) in the same run",
        "measured": {
            "date": _dt.date.today().isoformat(),
            "cpu": cpu_name(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "matmul_gflops": 2 * 1024**3 / cal / 1e9 if cal == cal else None,
        },
        "runs": len(runs),
        "calibrated": {k: round(v, 6) for k, v in sorted(calibrated_runs(runs).items())},
    }


def read_speed_baseline(path: Path) -> dict[str, float]:
    """The ``calibrated`` table of a speed baseline, validated as strictly as the results: a
    regular file of bounded size, a non-empty table, every value a finite positive JSON number
    (a NaN, negative or infinite baseline would let any slowdown pass, a zero would divide by
    zero). Anything else is a one-line :class:`UsageError`."""
    data = parse_json_text(read_input_text(path, "speed baseline"), f"speed baseline {path}")
    table = data.get("calibrated") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise UsageError(f'{path} is not a speed baseline (no "calibrated" table)')
    if not table:
        raise UsageError(f'speed baseline {path}: the "calibrated" table is empty')
    out: dict[str, float] = {}
    for name, value in table.items():
        number = positive_number(value)
        if number is None:
            raise UsageError(
                f"speed baseline {path}: {name!r} is {describe(value)}, not a finite positive "
                "number"
            )
        out[name] = number
    return out


# -- quality ----------------------------------------------------------------------------------
def quality_frame(data: Any, metrics: tuple[str, ...] = QUALITY_METRICS) -> pd.DataFrame:
    """A report's runs as tidy per-seed rows (label, dataset, arch, seed, metric, value)."""
    runs = data.runs
    present = [m for m in metrics if m in runs]
    tidy = runs.melt(id_vars=["label", "dataset", "arch", "seed"], value_vars=present,
                     var_name="metric", value_name="value")  # fmt: skip
    tidy = tidy.dropna(subset=["value"]).sort_values(["label", "seed", "metric"], kind="stable")
    return tidy[list(QUALITY_COLUMNS)].reset_index(drop=True)


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
    """The ``value`` column as floats, after checking every cell: no blank key, a metric the
    gate knows (another name could clash with a key column in the pivot), a finite number."""
    values = tidy["value"].map(_float_or_nan).astype(float)
    checks = [
        (c, tidy[c].notna() & (tidy[c].str.strip() != ""), "is blank") for c in QUALITY_COLUMNS[:5]
    ]
    checks.append(("metric", tidy["metric"].isin(QUALITY_METRICS), "is not a gate metric"))
    checks.append(("value", values.map(math.isfinite), "is not a finite number"))
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
