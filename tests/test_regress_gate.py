"""The speed-regression gate that ``nox -s regress`` applies actually catches a 2× slowdown."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

BENCH = """
import os, time

def test_workload(benchmark):
    # sleep-based, so the planted slowdown is exact even on a busy machine
    benchmark.pedantic(time.sleep, args=(0.02 * float(os.environ.get("SLOWDOWN", "1")),),
                       rounds=5, iterations=1)
"""


def _regress_threshold() -> str:
    text = (REPO / "noxfile.py").read_text()
    marker = 'REGRESSION_GATE = "'
    start = text.index(marker) + len(marker)
    return text[start : text.index('"', start)]


def _run(tmp_path, slowdown: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--benchmark-enable",
            f"--benchmark-storage=file://{tmp_path / 'store'}",
            "--rootdir",
            str(tmp_path),
            "-c",
            str(tmp_path / "pytest.ini"),
            str(tmp_path / "test_workload.py"),
            *extra,
        ],
        capture_output=True,
        text=True,
        env={"SLOWDOWN": slowdown, "PATH": "/usr/bin:/bin"},
        timeout=300,
        cwd=tmp_path,
    )


def test_gate_fails_on_a_planted_2x_slowdown_and_passes_without_one(tmp_path):
    (tmp_path / "test_workload.py").write_text(BENCH)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    gate = f"--benchmark-compare-fail={_regress_threshold()}"
    base = _run(tmp_path, "1", "--benchmark-autosave")
    assert base.returncode == 0, base.stdout + base.stderr
    same = _run(tmp_path, "1", "--benchmark-compare", gate)
    assert same.returncode == 0, same.stdout + same.stderr
    slow = _run(tmp_path, "2", "--benchmark-compare", gate)
    assert slow.returncode != 0
    assert "Performance has regressed" in slow.stdout + slow.stderr
