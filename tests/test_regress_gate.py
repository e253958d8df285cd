"""The CI regression gates (bench/perf/trend.py, bench/report/quality_gate.py, ``aebench
gate``, ``nox -s regress`` and ``regress_quality``): a planted 2x slowdown fails on a faster and
on a slower machine, no slowdown passes, a first run saves its baseline, and the quality gate's
Welch verdicts."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from aebench.cli import main
from aebench.perf import trend
from aebench.report import quality_gate as gates
from aebench.report.collect import ReportData
from tests.conftest import REPO, one_line_error

# -- speed: the normalisation -----------------------------------------------------------------
BASE = {trend.CALIBRATION: 0.004, "test_step[vae-conv]": 0.020, "test_fid": 0.100}


def _machine(speed: float, slow: dict[str, float] | None = None) -> dict[str, float]:
    """BASE on a machine ``speed`` times slower (0.5: twice as fast), some benchmarks slowed."""
    return {k: v * speed * (slow or {}).get(k, 1.0) for k, v in BASE.items()}


@pytest.mark.parametrize("machine", [0.5, 1.0, 2.0], ids=["2x-faster", "same", "2x-slower"])
def test_a_planted_2x_slowdown_fails_on_any_machine_and_none_passes(machine):
    baseline = trend.normalise(BASE)
    same = trend.compare_speed(trend.normalise(_machine(machine)), baseline)
    assert same.failed.empty and set(same.frame["status"]) == {"ok"}
    assert np.allclose(same.frame["ratio"], 1.0)
    slowed = _machine(machine, {"test_step[vae-conv]": 2.0})
    check = trend.compare_speed(trend.normalise(slowed), baseline)
    assert list(check.failed["benchmark"]) == ["test_step[vae-conv]"]
    assert check.failed["ratio"].iloc[0] == pytest.approx(2.0)


def test_absolute_times_alone_would_mislead():
    """Why calibrate: on a 2x slower machine every absolute time doubles (a naive gate fails
    all), and on a 2x faster one a real 2x slowdown leaves the absolute time unchanged."""
    slower, faster_but_slowed = _machine(2.0), _machine(0.5, {"test_fid": 2.0})
    assert all(slower[k] / BASE[k] == pytest.approx(2.0) for k in BASE)
    assert faster_but_slowed["test_fid"] == pytest.approx(BASE["test_fid"])
    check = trend.compare_speed(trend.normalise(faster_but_slowed), trend.normalise(BASE))
    assert list(check.failed["benchmark"]) == ["test_fid"]


def test_a_baseline_from_several_runs_is_their_median():
    """One slow moment (a run where one benchmark took 3x) does not set the baseline."""
    runs = [_machine(1.0), _machine(1.0, {"test_fid": 3.0}), _machine(2.0)]
    merged = trend.calibrated_runs(runs)
    assert merged == pytest.approx(trend.normalise(BASE))
    saved = trend.speed_baseline(runs)
    assert saved["runs"] == 3 and saved["calibrated"]["test_fid"] == pytest.approx(25.0)


def test_new_and_missing_benchmarks_are_reported_not_failed():
    current = trend.normalise({**BASE, "test_new": 0.01})
    del current["test_fid"]
    check = trend.compare_speed(current, trend.normalise(BASE))
    status = dict(zip(check.frame["benchmark"], check.frame["status"], strict=True))
    assert status["test_new"] == "new" and status["test_fid"] == "missing"
    assert check.failed.empty


# -- trend: the real pipeline, pytest-benchmark JSON through `aebench gate trend` ---------------
WORKLOAD = """
import os, time

import pytest

def _sleep(seconds):
    time.sleep(seconds * float(os.environ["MACHINE"]))

@pytest.mark.parametrize("name", ["calibration-matmul"])  # named as tests/benchmarks' case
def test_case(benchmark, name):  # sleep-based, so the planted factors are exact
    benchmark.pedantic(_sleep, args=(0.01,), rounds=5, iterations=1)

def test_workload(benchmark):
    benchmark.pedantic(_sleep, args=(0.02 * float(os.environ["SLOWDOWN"]),), rounds=5,
                       iterations=1)
"""


def _bench(tmp_path, machine: float, slowdown: float) -> str:
    """Run the workload as the regress session runs tests/benchmarks; return its JSON."""
    out = tmp_path / f"results-{machine}-{slowdown}.json"
    (tmp_path / "test_workload.py").write_text(WORKLOAD)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-enable",
         "--benchmark-only", f"--benchmark-json={out}", "-c", str(tmp_path / "pytest.ini"),
         "--rootdir", str(tmp_path), str(tmp_path / "test_workload.py")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={"MACHINE": str(machine), "SLOWDOWN": str(slowdown), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return str(out)


def test_the_speed_gate_saves_a_first_baseline_then_compares(tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    gate = ["gate", "trend", "--baseline", str(baseline)]
    assert main([*gate, _bench(tmp_path, 1.0, 1.0)]) == 0  # no baseline yet: saved, exit 0
    out = capsys.readouterr().out
    assert "saved" in out and str(baseline) in out
    saved = json.loads(baseline.read_text())
    assert saved["calibrated"]["test_workload"] == pytest.approx(2.0, rel=0.1)
    assert main([*gate, _bench(tmp_path, 1.0, 1.0)]) == 0  # compares: no slowdown
    assert "no regression" in capsys.readouterr().out
    assert main([*gate, _bench(tmp_path, 0.5, 2.0)]) == 1  # 2x faster machine, 2x slower code
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "test_workload" in out
    assert main([*gate, _bench(tmp_path, 2.0, 1.0)]) == 0  # a 2x slower machine alone passes
    assert main([*gate, _bench(tmp_path, 2.0, 2.0)]) == 1
    before = baseline.read_bytes()
    assert main([*gate, _bench(tmp_path, 1.0, 2.0), "--update-baseline"]) == 0
    assert baseline.read_bytes() != before and "rewritten" in capsys.readouterr().out


def test_speed_gate_bad_input_is_one_line(tmp_path, capsys):
    baseline = tmp_path / "b.json"
    one_line_error(capsys, ["gate", "trend", str(tmp_path / "none.json"), "--baseline",
                            str(baseline)])  # fmt: skip
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    one_line_error(capsys, ["gate", "trend", str(junk), "--baseline", str(baseline)])
    uncalibrated = tmp_path / "u.json"
    rows = [{"name": "t", "stats": {"min": 1.0, "median": 1.0}}]
    uncalibrated.write_text(json.dumps({"benchmarks": rows}))
    line = one_line_error(capsys, ["gate", "trend", str(uncalibrated), "--baseline",
                                   str(baseline)])  # fmt: skip
    assert trend.CALIBRATION in line
    assert not baseline.exists()


def test_the_committed_speed_baseline_covers_every_benchmark():
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/benchmarks"], capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    names = {ln.split("::", 1)[1] for ln in collected.stdout.splitlines() if "::" in ln}
    assert trend.CALIBRATION in names and len(names) > 5
    baseline = trend.read_speed_baseline(REPO / "tests" / "benchmarks" / "baseline.json")
    assert set(baseline) == names - {trend.CALIBRATION}
    assert all(math.isfinite(v) and v > 0 for v in baseline.values())


# -- quality ------------------------------------------------------------------------------------
def _data(shift: dict[tuple[str, str], float] | None = None, seeds=(0, 1, 2)) -> ReportData:
    rng = np.random.default_rng(0)
    centres = {"ae": {"recon_mse": 0.02, "fid": 40.0}, "vae": {"recon_mse": 0.03, "fid": 30.0}}
    rows = []
    for label, metrics in centres.items():
        for seed in seeds:
            row = {"label": label, "dataset": "mnist-5k", "arch": "mlp", "seed": seed}
            for m, c in metrics.items():
                row[m] = c * (1 + 0.01 * rng.standard_normal()) * (shift or {}).get((label, m), 1)
            rows.append(row)
    return ReportData("gate", pd.DataFrame(rows), pd.DataFrame(), ["fid", "recon_mse"], ["label"])


def test_quality_gate_verdicts_on_planted_data(tmp_path):
    path = tmp_path / "q.csv"
    gates.quality_frame(_data()).to_csv(path, index=False)
    same = gates.compare_quality(_data(), path, 0.05, 0.05)
    assert same.regressions.empty and len(same.frame) == 4
    worse = gates.compare_quality(_data({("vae", "fid"): 1.3}), path, 0.05, 0.05)
    assert list(zip(worse.regressions["label"], worse.regressions["metric"], strict=True)) == [
        ("vae", "fid")
    ]
    better = gates.compare_quality(_data({("ae", "recon_mse"): 0.7}), path, 0.05, 0.05)
    assert better.regressions.empty
    assert "improved" in set(better.frame["status"])
    one_seed = gates.compare_quality(_data({("vae", "fid"): 1.3}, seeds=(0,)), path, 0.05, 0.05)
    assert one_seed.regressions.empty  # one seed: no variance, nothing can be called significant


def test_quality_gate_end_to_end_through_the_cli(tmp_path, capsys):
    from aebench.experiments.suite import load_suite
    from aebench.store.database import Store

    suite = load_suite("gate")
    baseline = tmp_path / "quality.csv"
    for name, shift in (("base", 1.0), ("worse", 1.4)):
        db = tmp_path / f"{name}.sqlite"
        with Store.open(db) as store, store.lock():
            for cfg in suite.expand():
                run_id = store.mark_running(cfg, {})
                noise = 1 + 0.01 * np.sin(cfg.seed + len(cfg.label))
                value = {"ae": 0.02, "vae": 0.03}[cfg.label] * noise
                store.finish(run_id, "done", {"recon_mse": value * (shift if cfg.label ==
                                                                      "vae" else 1.0)})  # fmt: skip
    gate = ["gate", "quality", "--suite", "gate", "--baseline", str(baseline)]
    assert main([*gate, "--store", str(tmp_path / "base.sqlite")]) == 0
    assert "saved" in capsys.readouterr().out and baseline.exists()
    assert main([*gate, "--store", str(tmp_path / "base.sqlite")]) == 0
    assert "0 regression(s)" in capsys.readouterr().out
    assert main([*gate, "--store", str(tmp_path / "worse.sqlite")]) == 1
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("REGRESSION"))
    assert "vae recon_mse" in line and "baseline 0.029" in line and "now 0.041" in line
    assert "p = " in line


def test_the_committed_quality_baseline_matches_the_gate_suite():
    from aebench.experiments.suite import load_suite

    tidy = pd.read_csv(REPO / "tests" / "benchmarks" / "quality_baseline.csv")
    suite = load_suite("gate")
    assert set(tidy["label"]) == {m.label for m in suite.models}
    assert set(tidy["seed"]) == set(suite.seeds)
    assert set(tidy["metric"]) >= {"recon_mse", "fid", "precision", "recall"}
    assert tidy["value"].map(math.isfinite).all()
