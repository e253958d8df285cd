"""``aebench gate speed|trend|quality``: the CI regression gates.

``speed`` times the working tree against a base commit in this job (bench/perf,
:mod:`aebench.commands.gate_speed`): the pass/fail speed signal. ``trend`` and ``quality``
compare against a committed baseline (bench/perf/trend.py, bench/report/quality_gate.py) and
exit 1 on a regression; with no baseline yet they write one and exit 0 (saying where), and
``--update-baseline`` rewrites it deliberately.
``trend`` is the cross-machine record of calibrated times: ``nox -s regress`` prints it for
information and does not fail on it, because noise on a shared machine is not one a
calibration kernel divides out.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from aebench.commands.gate_speed import add_speed_arguments, run_speed
from aebench.commands.report import alpha_arg, tolerance_arg

NAME = "gate"
HELP = (
    "CI regression gates: speed against a base commit (interleaved A/B), the calibrated speed "
    "trend, or a suite's quality (Welch)."
)
SPEED_BASELINE = "tests/benchmarks/baseline.json"
QUALITY_BASELINE = "tests/benchmarks/quality_baseline.csv"


def add_arguments(p: argparse.ArgumentParser) -> None:
    # defaults are filled in by run(): importing the gates (pandas, the report's scipy) here
    # would make every `aebench gate` call wait for them
    sub = p.add_subparsers(dest="gate", required=True, metavar="{speed,trend,quality}")
    add_speed_arguments(sub)
    speed = sub.add_parser("trend", help="pytest-benchmark JSON against the calibrated baseline")
    speed.add_argument(
        "results",
        nargs="+",
        help="the --benchmark-json file(s) of tests/benchmarks runs (several: their median)",
    )
    speed.add_argument("--baseline", default=SPEED_BASELINE, help=f"default: {SPEED_BASELINE}")
    speed.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="fail beyond this relative growth of a calibrated time (default: the measured "
        "SPEED_THRESHOLD of bench/perf/trend.py)",
    )
    quality = sub.add_parser("quality", help="a suite's finished runs against a per-seed CSV")
    quality.add_argument("--store", required=True, help="the results store the suite ran into")
    quality.add_argument("--suite", default="gate", help="suite name in the store (default: gate)")
    quality.add_argument(
        "--baseline", default=QUALITY_BASELINE, help=f"default: {QUALITY_BASELINE}"
    )
    # the report's own validation: an alpha of 5 or a tolerance of inf would pass anything
    quality.add_argument("--alpha", type=alpha_arg, default=None, help="Welch p threshold (0.05)")
    quality.add_argument(
        "--tolerance", type=tolerance_arg, default=None, help="smallest relative change (0.05)"
    )
    for sp in (speed, quality):
        sp.add_argument(
            "--update-baseline", action="store_true", help="rewrite the baseline from this run"
        )


def run(args: argparse.Namespace) -> int:
    if args.gate == "speed":
        return run_speed(args)
    return _speed(args) if args.gate == "trend" else _quality(args)


def _speed(args: argparse.Namespace) -> int:
    from aebench.core.atomic import write_json_atomic
    from aebench.core.errors import UsageError
    from aebench.perf import trend

    if args.threshold is None:
        args.threshold = trend.SPEED_THRESHOLD
    if not 0 < args.threshold < 100:
        raise UsageError(f"--threshold must be between 0 and 100, got {args.threshold}")
    runs = [trend.read_benchmarks(r) for r in args.results]
    current = trend.calibrated_runs(runs)
    path = Path(args.baseline)
    if not current:
        raise UsageError(f"the results hold no benchmark besides {trend.CALIBRATION}")
    if args.update_baseline or not path.exists():
        why = "rewritten" if path.exists() else "none found, saved"
        _refuse_unless_baseline(path, "speed", lambda head: '"calibrated"' in head)
        write_json_atomic(path, trend.speed_baseline(runs))
        print(f"speed baseline {why}: {path} ({len(current)} benchmarks); commit it to gate "
              "later runs")  # fmt: skip
        return 0
    check = trend.compare_speed(current, trend.read_speed_baseline(path), args.threshold)
    compared = int(check.frame["status"].isin(["ok", "regressed"]).sum())
    if not compared:  # every benchmark "new" or "missing": a gate that tested nothing
        raise UsageError(f"speed gate against {path}: no benchmark of the results is in the "
                         "baseline, nothing compared")  # fmt: skip
    for line in check.lines():
        print(line)
    n = len(check.failed)
    verdict = f"{n} of {compared} benchmark(s) regressed" if n else f"no regression in {compared}"
    print(f"speed gate against {path}: {verdict} (fail beyond +{args.threshold:.0%} of the "
          "baseline's time relative to the calibration matmul)")  # fmt: skip
    return 1 if n else 0


def _quality(args: argparse.Namespace) -> int:
    from aebench.core.atomic import atomic_write
    from aebench.core.errors import UsageError
    from aebench.report import collect
    from aebench.report import quality_gate as gates
    from aebench.report.baseline import DEFAULT_ALPHA, DEFAULT_TOLERANCE, regression_line

    args.alpha = DEFAULT_ALPHA if args.alpha is None else args.alpha
    args.tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance

    data = collect.load(args.store, args.suite)
    path = Path(args.baseline)
    if args.update_baseline or not path.exists():
        why = "rewritten" if path.exists() else "none found, saved"
        broken = gates.broken_value(data)
        if broken is not None:
            raise UsageError(f"suite {data.suite}: {broken} is not a finite number, so this "
                             "run is no quality baseline; nothing saved")  # fmt: skip
        header = ",".join(gates.QUALITY_COLUMNS)
        _refuse_unless_baseline(path, "quality", lambda head: head.startswith(header))
        tidy = gates.quality_frame(data)
        if tidy.empty:
            metrics = ", ".join(gates.QUALITY_METRICS)
            raise UsageError(f"suite {data.suite} recorded none of {metrics}: no baseline to save")
        atomic_write(path, lambda tmp: tidy.to_csv(tmp, index=False))
        print(f"quality baseline {why}: {path} ({len(tidy)} values of {len(data.runs)} runs); "
              "commit it to gate later runs")  # fmt: skip
        return 0
    comp = gates.compare_quality(data, path, args.alpha, args.tolerance)
    if not comp.compared:  # only "new", "missing" or one-seed pairs: the gate tested nothing
        raise UsageError(
            f"quality gate against {path}: nothing compared (no model × metric has values of "
            f"two or more seeds both in suite {data.suite} and in the baseline; do their "
            "labels, datasets and metrics match?)"
        )
    for _, row in comp.regressions.iterrows():
        print(regression_line(row, comp.keys))
    n = len(comp.regressions)
    print(f"quality gate against {path}: {n} regression(s) in {comp.compared} model × metric "
          f"comparisons (Welch p < {args.alpha:g} and |Δ| > {args.tolerance:.0%})")  # fmt: skip
    return 1 if n else 0


def _refuse_unless_baseline(path: Path, kind: str, looks_like: Callable[[str], bool]) -> None:
    """Refuse to write a baseline over an existing file that is not one of ``kind`` (a store,
    weights, the results themselves, a typo's target): ``--update-baseline`` rewrites a
    baseline, never anything else. What it checks is the file's start, so a damaged baseline
    can still be replaced."""
    from aebench.core.errors import UsageError

    if not path.exists():
        return
    try:
        with path.open("rb") as handle:
            raw = handle.read(4096)
    except OSError:
        raw = None
    head = None if raw is None else raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    if raw == b"":  # an empty file holds nothing to lose
        return
    if head is None or not path.is_file() or not looks_like(head):
        raise UsageError(
            f"{path} is not a {kind} baseline, so it is not written over; give the baseline's "
            "path, or remove the file first"
        )
