"""``aebench eval --store``: families a finished suite lacks, from saved weights (issue 14,
item 3): never retrains, never loses a row, resumes after a kill."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.metrics.family import FAMILIES
from tests.conftest import REPO, file_hashes, one_line_error
from tests.test_readme import _python_blocks

SUITE = """
name = "two"
models = ["ae", "vae"]
datasets = ["mnist-5k"]
archs = ["mlp"]
seeds = [0]
latent_dim = 4
device = "cpu"
[budget]
steps = 4
[metrics]
n_samples = 100
iw_k = 4
iw_n = 16
"""


@pytest.fixture
def finished(tmp_path, domain_net):
    """A finished two-run suite: its store and artifacts folder."""
    suite, db = tmp_path / "two.toml", tmp_path / "s.sqlite"
    suite.write_text(SUITE)
    assert main(["run", str(suite), "--store", str(db), "--quiet"]) == 0
    return db


def _rows(db: Path, where: str = "") -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT run_id, phase, name, value FROM metrics {where} "
                            "ORDER BY run_id, phase, name").fetchall()  # fmt: skip


def test_a_new_family_reaches_finished_runs_without_retraining(finished, capsys):
    (block,) = [b for b in _python_blocks() if "@register_family" in b]
    weights = file_hashes(finished.parent / "artifacts")
    before = _rows(finished)
    try:
        exec(compile(block, "README.md", "exec"), {})
        assert main(["eval", "--store", str(finished)]) == 0
        assert "2 run(s) gained metrics" in capsys.readouterr().out
        after = _rows(finished)
        assert set(before) <= set(after)  # every earlier row, history included, unchanged
        added = [r for r in after if r not in before]
        assert [(r[1], r[2]) for r in added] == [("final", "recon_l1")] * 2
        assert all(0 < r[3] < 1 for r in added)
        assert file_hashes(finished.parent / "artifacts") == weights  # nothing retrained
        assert main(["eval", "--store", str(finished)]) == 0  # nothing left to do
        assert "0 run(s) gained metrics" in capsys.readouterr().out
        out = finished.parent / "report"
        assert main(["report", "--store", str(finished), "--out", str(out), "--no-figures"]) == 0
        assert "Recon L1 ↓" in (out / "report.md").read_text()
    finally:
        FAMILIES.unregister("recon-l1")


def test_a_kill_during_eval_store_then_a_rerun_completes(finished):
    """Drop one family's rows, re-evaluate them in a process killed once the first run's rows
    are committed, run again: every run ends with them exactly once, the same values."""
    keys = ("sharpness_samples", "sharpness_recon", "hf_energy_samples", "hf_energy_recon")
    where = f"WHERE name IN ({', '.join(repr(k) for k in keys)})"
    reference = _rows(finished, where)
    with sqlite3.connect(finished) as conn:
        conn.execute(f"DELETE FROM metrics {where}")
    cmd = [sys.executable, "-m", "bench", "eval", "--store", str(finished), "--only", "sharpness"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not _rows(finished, where):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    partial = _rows(finished, where)
    assert len(partial) in (0, 4, 8)  # whole runs only: one transaction per run
    again = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    final = _rows(finished, where)
    assert [r[:3] for r in final] == [r[:3] for r in reference]
    for ours, theirs in zip(final, reference, strict=True):
        assert ours[3] == pytest.approx(theirs[3], rel=1e-6)


def test_an_unknown_family_or_a_bad_combination_is_one_line(finished, tmp_path, capsys):
    before = finished.read_bytes()
    line = one_line_error(capsys, ["eval", "--store", str(finished), "--only", "nope"])
    assert "nope" in line and "sharpness" in line
    one_line_error(capsys, ["eval"])
    one_line_error(capsys, ["eval", str(tmp_path), "--store", str(finished)])
    one_line_error(capsys, ["eval", str(tmp_path), "--only", "sharpness"])
    line = one_line_error(capsys, ["eval", "--store", str(finished), "--suite", "other"])
    assert "other" in line
    assert finished.read_bytes() == before
