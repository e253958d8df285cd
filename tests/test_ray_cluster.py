"""A suite on a real multi-node Ray cluster with no shared filesystem (issue 28, items 1 and
2): the driver ships each dataset through Ray's object store, tasks train in node-local scratch
and return the run's files, and the driver alone writes the run folders and the store.

The head node offers no CPUs, so every run is scheduled on the worker node, and that node runs
in its own mount namespace (``unshare --mount``, as root) where a tmpfs hides the test's whole
folder: the data, the store and the run folders. The suite still completes, its run folders
hold what a local run's hold, with the same weights, and re-evaluation and the report work on
them. Every process is the test's own: started here, stopped here by process group."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aebench.perf.cluster_overhead import RAY_ENV, alive_nodes, free_port, stop_local_cluster
from aebench.store.database import Store
from tests.conftest import run_cli

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray", reason="Ray is the optional extra aebench[ray]")
RAY = str(Path(sys.executable).with_name("ray"))
ENV = {**os.environ, **RAY_ENV}
NODE_FLAGS = ["--block", "--disable-usage-stats"]


def needs_namespaces() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("this test needs root and unshare (util-linux) for a worker's mount namespace")


def image_folder(root: Path) -> Path:
    """Two classes of 28×28 grey images: bright bars in class 0, bright blocks in class 1."""
    rng = np.random.default_rng(0)
    for label in ("0", "1"):
        (root / label).mkdir(parents=True)
        for i in range(40):
            img = (rng.random((28, 28)) * 60).astype(np.uint8)
            if label == "0":
                img[:, 10 + i % 8 : 14 + i % 8] = 250
            else:
                img[8 + i % 6 : 18 + i % 6, 8:20] = 250
            Image.fromarray(img).save(root / label / f"{i:02d}.png")
    return root


def start_head(address: str) -> subprocess.Popen[bytes]:
    """A head node offering no CPUs (so every run goes to a worker node), in its own session."""
    port = address.rpartition(":")[2]
    head = [RAY, "start", "--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false"]
    return subprocess.Popen([*head, *NODE_FLAGS], env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def start_hidden_worker(
    address: str, hidden: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A 1-CPU worker node in its own mount namespace, where a tmpfs hides ``hidden``."""
    worker = f"mount -t tmpfs tmpfs {hidden} && exec {RAY} start --address={address} --num-cpus=1"
    hide = ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
    return subprocess.Popen([*hide, f"{worker} {' '.join(NODE_FLAGS)}"], env={**ENV, **(env or {})},
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


def wait_for_nodes(address: str, count: int, deadline: float) -> None:
    while alive_nodes(address) < count:
        assert time.monotonic() < deadline, f"fewer than {count} Ray nodes came up"
        time.sleep(2)


def cluster_address() -> str:
    return f"{ray.util.get_node_ip_address()}:{free_port()}"  # where Ray binds, not 127.0.0.1


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A head with no CPUs and one 1-CPU worker node that cannot see ``tmp_path``."""
    needs_namespaces()
    data = image_folder(tmp_path / "data")
    address = cluster_address()
    procs = [start_head(address)]
    try:
        deadline = time.monotonic() + 300  # nodes start slowly on a loaded 2-core machine
        wait_for_nodes(address, 1, deadline)
        procs.append(start_hidden_worker(address, tmp_path))
        wait_for_nodes(address, 2, deadline)
        yield address, data
    finally:
        stop_local_cluster(procs)


SUITE = """
name = "hidden-data"
models = ["ae"]
datasets = ["image-folder"]
archs = ["mlp"]
seeds = [0]
latent_dim = 4
device = "cpu"
[budget]
steps = 6
[metrics]
n_samples = 40
"""


def run_folder(store: Path) -> Path:
    with Store.open(store, readonly=True) as db:
        (run,) = db.runs(suite="hidden-data")
        return (
            Path(run["artifacts"])
            if Path(run["artifacts"]).is_absolute()
            else (store.parent / run["artifacts"])
        )


def test_a_worker_node_that_sees_none_of_the_drivers_files_runs_a_suite(
    cluster: tuple[str, Path], tmp_path: Path
) -> None:
    address, data = cluster
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE)
    hidden = subprocess.run(  # the worker's view of the test's folder: empty
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f"mount -t tmpfs tmpfs {tmp_path} && ls -A {tmp_path} | wc -l"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert hidden.stdout.strip() == "0" and len(list(data.rglob("*.png"))) == 80
    on_ray, local = tmp_path / "ray" / "s.sqlite", tmp_path / "local" / "s.sqlite"
    common = ["run", str(suite), "--data-dir", str(data), "--quiet"]
    too_big = run_cli(*common, "--store", str(on_ray), "--executor", "ray", "--ray-address",
                      address, "--threads-per-run", "2", env=RAY_ENV)  # fmt: skip
    assert too_big.returncode == 2 and "Traceback" not in too_big.stderr, too_big.stderr[-2000:]
    assert "more than any node of the Ray cluster has (the largest has 1 CPUs)" in too_big.stderr
    if on_ray.exists():  # the store may be created; it holds no run
        with Store.open(on_ray, readonly=True) as db:
            assert db.runs() == []
    result = run_cli(*common, "--store", str(on_ray), "--executor", "ray", "--ray-address",
                     address, env=RAY_ENV)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    local_run = run_cli(*common, "--store", str(local), env={"OMP_NUM_THREADS": "1"})
    assert local_run.returncode == 0, local_run.stderr[-2000:]
    with Store.open(on_ray, readonly=True) as a, Store.open(local, readonly=True) as b:
        (ra,), (rb,) = a.runs(suite="hidden-data"), b.runs(suite="hidden-data")
        assert ra["status"] == "done" and ra["resources"] == "ray: 1 CPU"
        assert ra["weights_sha256"] == rb["weights_sha256"]  # same seed, same single thread
        assert a.metrics(ra["id"])["recon_mse"] == b.metrics(rb["id"])["recon_mse"]
    folder, local_folder = run_folder(on_ray), run_folder(local)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(p.name for p in local_folder.iterdir())
    assert (folder / "model.safetensors").read_bytes() == (
        local_folder / "model.safetensors"
    ).read_bytes()
    # the driver's folders serve re-evaluation and the report as a local run's do
    again = run_cli("eval", str(folder), "--skip", "generation", "--skip", "speed")
    assert again.returncode == 0, again.stderr[-2000:]
    report = run_cli("report", "--store", str(on_ray), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr[-2000:]
    assert (tmp_path / "report" / "fig1_samples.png").stat().st_size > 0
