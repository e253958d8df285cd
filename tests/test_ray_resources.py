"""The Ray executor reserves the CPUs a run uses (issue 28, item 3): each task runs torch on
exactly the CPUs Ray assigned it, whatever OMP_NUM_THREADS the node's environment sets, and the
store and the report say what was reserved. Bad Ray options are one line and exit 2, with
nothing written. Real Ray, started by aebench in a subprocess as a user's command would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aebench.store.database import Store
from tests.conftest import one_line_error, run_cli, tiny_suite

pytest.importorskip("ray", reason="Ray is the optional extra aebench[ray]")
RAY_ENV = {"RAY_DISABLE_USAGE_STATS": "1"}


@pytest.fixture
def one_run(tmp_path: Path) -> Path:
    path = tmp_path / "one.toml"
    path.write_text(tiny_suite("one", ["vae"], [0]))
    return path


@pytest.mark.slow  # starts a Ray of its own (~10-30 s)
@pytest.mark.parametrize(("threads", "node_omp"), [(2, "1"), (1, "2")])
def test_each_task_runs_torch_on_the_cpus_ray_assigned_it(
    one_run: Path, tmp_path: Path, cache_env: dict[str, str], threads: int, node_omp: str
) -> None:
    db = tmp_path / "s.sqlite"
    args = ["run", str(one_run), "--store", str(db), "--executor", "ray", "--quiet"]
    env = {**cache_env, **RAY_ENV, "OMP_NUM_THREADS": node_omp}  # what a node image might set
    # a cluster address left in the environment (or in /tmp/ray by an earlier `ray start`) is
    # not joined: without --ray-address the run starts its own local Ray
    env["RAY_ADDRESS"] = "127.0.0.1:1"
    result = run_cli(*args, "--threads-per-run", str(threads), env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    with Store.open(db, readonly=True) as store:
        (run,) = store.runs(suite="one")
    # both read inside the task: torch's thread count, and Ray's assignment
    assert run["status"] == "done" and run["threads"] == threads
    assert run["resources"] == f"ray: {threads} CPU{'s' if threads > 1 else ''}"
    report = tmp_path / "report"
    built = run_cli("report", "--store", str(db), "--out", str(report), env=cache_env)
    assert built.returncode == 0, built.stderr[-2000:]
    header = (report / "report.md").read_text()
    assert f"- **Reserved per run:** {run['resources']}" in header
    assert f"- **Threads:** {threads}" in header


def test_more_threads_per_run_than_this_machine_is_one_line_and_writes_nothing(
    one_run: Path, tmp_path: Path
) -> None:
    """Refused before a local Ray starts, so Ray's own start-up lines do not precede it (the
    same check against a real multi-node cluster: tests/test_ray_cluster.py)."""
    db = tmp_path / "s.sqlite"
    args = ["run", str(one_run), "--store", str(db), "--executor", "ray", "--quiet"]
    result = run_cli(*args, "--threads-per-run", "4096", env=RAY_ENV)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.splitlines()
    assert line.startswith("aebench: error: --threads-per-run 4096 is more than this machine has")
    if db.exists():  # the store may be created; it holds no run
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--threads-per-run", "2"], "--threads-per-run is for --executor ray"),
        (["--gpus-per-run", "0.5"], "--gpus-per-run is for --executor ray"),
        (["--ray-address", "1.2.3.4:1"], "--ray-address is for --executor ray"),  # was ignored
        (["--executor", "ray", "--threads-per-run", "0"], "--threads-per-run must be >= 1"),
        (["--executor", "ray", "--gpus-per-run", "1.5"], "--gpus-per-run must be in (0, 1]"),
        (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "cannot reach a Ray cluster"),
    ],
)
def test_bad_ray_options_are_one_line(
    one_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    db = tmp_path / "s.sqlite"
    line = one_line_error(capsys, ["run", str(one_run), "--store", str(db), *extra])
    assert message in line
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
