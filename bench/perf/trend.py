"""The speed trend of CI (``aebench gate trend``): pytest-benchmark times against a committed,
machine-normalised baseline.

Absolute times do not travel: the same code runs 2.5-3x slower on one 2-core VM than on
another. So every benchmark of ``tests/benchmarks`` is also recorded as a ratio to a calibration
kernel timed in the same pytest run and dtype — an fp32 1024 x 1024 matmul
(``test_calibration_matmul``, the kernel ``aebench speed`` reports as the machine's matmul
rate). A machine twice as fast halves both times and leaves the ratio alone; a change that makes
one benchmark 2x slower doubles its ratio on any machine. :func:`compare_speed` flags a
benchmark whose ratio grew by more than :data:`SPEED_THRESHOLD` over the committed baseline
(``tests/benchmarks/baseline.json``), and ``aebench gate trend`` then exits 1. ``nox -s regress``
prints it for information only: noise on a shared VM is not uniform enough for a calibration
kernel to divide it out (docs/ci-gates.md), so the pass/fail speed signal is
:mod:`aebench.perf.abtest`.

The baseline is written when there is none (exit 0, saying where) and rewritten only when asked
(``--update-baseline``). Anything that would let the trend pass without testing anything — a
time or baseline value that is not a finite positive number, an unreadable or unbounded file, a
comparison in which no benchmark was compared — is refused in one line (exit 2).
"""

from __future__ import annotations

import datetime as _dt
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aebench.core.atomic import parse_json_text, read_input_text
from aebench.core.errors import UsageError
from aebench.core.values import describe, is_real
from aebench.store.schema import cpu_name

CALIBRATION = "test_case[calibration-matmul]"
#: which pytest-benchmark statistic is compared: the fastest round. On a shared machine noise
#: only ever adds time, so the minimum is the steadiest estimate of what the code costs
#: (measured below: worst run-to-run spread 38 % for the minimum, 57 % for the median).
STATISTIC = "min"
#: flag a benchmark whose calibrated time grew by more than this fraction in the informational
#: trend: above the run-to-run spread of a quiet VM, below a 2x slowdown (docs/ci-gates.md)
SPEED_THRESHOLD = 0.60


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
    import torch  # only to record where a baseline was measured

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
