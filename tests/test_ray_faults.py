"""Faults on a real 3-node Ray cluster (issue 28, item 4).

* A worker node dies mid-run: the test kills that node's raylet by PID, and the run finishes on
  the other node, resumed from the last checkpoint its task shipped to the driver, with one row
  in the store and the weights of an uninterrupted run.
* The driver dies mid-suite: the same command finishes the suite on the cluster.

Two 1-CPU worker nodes, each in its own mount namespace that hides the test's folder (no
shared filesystem), and each with its own scratch folder (``TMPDIR``), so the test sees which
node trains the run. Every process is the test's own: started here, stopped here."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aebench.perf.cluster_overhead import RAY_ENV, stop_local_cluster
from aebench.store.database import Store
from aebench.training.checkpoint import epochs_done
from tests.conftest import REPO, run_cli
from tests.test_ray_cluster import (
    cluster_address,
    needs_namespaces,
    start_head,
    start_hidden_worker,
    wait_for_nodes,
)

pytestmark = pytest.mark.slow

SUITE = """
name = "node-fault"
models = ["ae"]
datasets = ["mnist-5k"]
archs = ["conv"]
seeds = [0]
latent_dim = 4
batch_size = 128
device = "cpu"
[budget]
epochs = 16
[metrics]
n_samples = 100
iw_k = 4
iw_n = 16
"""


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, list[tuple[subprocess.Popen, Path]]]]:
    """A head with no CPUs and two 1-CPU worker nodes that cannot see ``tmp_path``; each
    worker node with its own scratch folder."""
    needs_namespaces()
    address = cluster_address()
    procs = [start_head(address)]
    scratches = [Path(tempfile.mkdtemp(prefix=f"aebench-node{i}-")) for i in range(2)]
    try:
        deadline = time.monotonic() + 300  # nodes start slowly on a loaded 2-core machine
        wait_for_nodes(address, 1, deadline)
        workers = []
        for count, scratch in enumerate(scratches, start=2):
            # one at a time: two raylets starting at once on one host race for the session's
            # socket names, and the loser dies ("bind: Address already in use")
            procs.append(start_hidden_worker(address, tmp_path, {"TMPDIR": str(scratch)}))
            workers.append((procs[-1], scratch))
            wait_for_nodes(address, count, deadline)
        yield address, workers
    finally:
        stop_local_cluster(procs)
        for scratch in scratches:
            shutil.rmtree(scratch, ignore_errors=True)


def _raylet_pid(node: subprocess.Popen) -> int:
    """The raylet among the node's processes (its session is the one ``ray start`` began)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (
                os.getsid(int(entry.name)) == node.pid
                and (entry / "comm").read_text() == "raylet\n"
            ):
                return int(entry.name)
        except (OSError, ProcessLookupError):
            continue
    raise AssertionError(f"no raylet in the session of node process {node.pid}")


def _training_node(workers: list, deadline: float, after_epochs: int) -> subprocess.Popen:
    """The worker node whose scratch folder holds the run's checkpoint once it has finished
    ``after_epochs`` epochs."""
    while time.monotonic() < deadline:
        for node, scratch in workers:
            for checkpoint in scratch.glob("aebench-run-*/run/checkpoint.safetensors"):
                if epochs_done(checkpoint) >= after_epochs:
                    return node
        time.sleep(0.2)
    raise AssertionError("no worker node wrote the run's checkpoint in time")


def test_a_run_whose_node_dies_resumes_elsewhere_from_its_last_shipped_checkpoint(
    two_workers: tuple[str, list], tmp_path: Path
) -> None:
    address, workers = two_workers
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE)
    on_ray, local = tmp_path / "ray" / "s.sqlite", tmp_path / "local" / "s.sqlite"
    driver = subprocess.Popen(
        [sys.executable, "-m", "aebench", "run",
         str(suite), "--quiet", "--store", str(on_ray), "--executor", "ray", "--ray-address",
         address, "--checkpoint-every", "0"],
        env={**os.environ, **RAY_ENV, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        node = _training_node(workers, time.monotonic() + 180, after_epochs=3)
        time.sleep(1.5)  # the task ships each new checkpoint within half a second
        os.kill(_raylet_pid(node), signal.SIGKILL)
        _, err = driver.communicate(timeout=420)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err[-3000:]
    restarts = [line for line in err.splitlines() if "restarting it on the cluster" in line]
    assert len(restarts) == 1, err[-3000:]
    resumed_after = int(restarts[0].split("checkpoint after epoch ")[1].split()[0])
    assert 3 <= resumed_after < 16, restarts[0]  # from a shipped checkpoint, not from scratch
    local_run = run_cli("run", str(suite), "--quiet", "--store", str(local),
                        env={"OMP_NUM_THREADS": "1"})  # fmt: skip
    assert local_run.returncode == 0, local_run.stderr[-2000:]
    with Store.open(on_ray, readonly=True) as a, Store.open(local, readonly=True) as b:
        rows, (reference,) = a.runs(suite="node-fault"), b.runs(suite="node-fault")
        assert len(rows) == 1 and rows[0]["status"] == "done", rows
        assert rows[0]["config_hash"] == reference["config_hash"]
        assert rows[0]["weights_sha256"] == reference["weights_sha256"]
        assert f"restarted from the checkpoint after epoch {resumed_after}" in rows[0]["resources"]


def _statuses(store: Path) -> list[tuple[str, str, str | None, str | None]]:
    """(config hash, status, weights sha256, end time) per row; none while the store is made."""
    try:
        with Store.open(store, readonly=True) as db:
            return [(r["config_hash"], r["status"], r["weights_sha256"], r["ended_at"])
                    for r in db.runs()]  # fmt: skip
    except Exception:  # not created yet, or mid-write: look again
        return []


def test_a_driver_killed_mid_suite_on_the_cluster_resumes_with_the_same_command(
    two_workers: tuple[str, list], tmp_path: Path
) -> None:
    """Ray ends the tasks of a dead driver; the same command then runs what is not done, on the
    cluster: no run lost, none twice, finished rows untouched, every run's weights a local run's."""
    address, _ = two_workers
    suite = tmp_path / "suite.toml"
    suite.write_text(
        SUITE.replace("epochs = 16", "epochs = 4").replace("seeds = [0]", "seeds = [0, 1, 2]")
    )
    on_ray, local = tmp_path / "ray" / "s.sqlite", tmp_path / "local" / "s.sqlite"
    command = [sys.executable, "-m", "aebench", "run", str(suite), "--quiet", "--store",
               str(on_ray), "--executor", "ray", "--ray-address", address]  # fmt: skip
    env = {**os.environ, **RAY_ENV, "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    deadline, finished = time.monotonic() + 300, []
    try:
        while time.monotonic() < deadline and driver.poll() is None and not finished:
            rows = _statuses(on_ray)
            if any(r[1] == "running" for r in rows):
                finished = [r for r in rows if r[1] == "done"]
            time.sleep(0.05)
    finally:
        driver.kill()
        driver.wait()
    assert finished, "the driver never had a run done and another running"
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    reference = run_cli("run", str(suite), "--quiet", "--store", str(local),
                        env={"OMP_NUM_THREADS": "1"})  # fmt: skip
    assert reference.returncode == 0, reference.stderr[-2000:]
    rows, local_rows = _statuses(on_ray), _statuses(local)
    assert len(rows) == 3 and {r[1] for r in rows} == {"done"}, rows
    assert sorted(r[:3] for r in rows) == sorted(r[:3] for r in local_rows)  # weights, once each
    assert set(finished) <= set(rows)  # the runs finished before the kill: rows untouched
