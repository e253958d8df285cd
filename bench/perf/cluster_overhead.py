"""``nox -s cluster_overhead``: what running a suite on a Ray cluster adds to its wall time.

Issue 28 asks that dispatch plus artifact return stay within 10 % of a quick-suite run's time.
One script, one run, on this machine, one thing at a time:

1. **the yardstick**: the first grid point of the ``quick`` suite (ae, conv, mnist-5k, 30
   epochs, every metric) trained and evaluated on one thread, as a suite's run is;
2. **local**: ``aebench run smoke --jobs 2`` (two worker processes, each with half the cores'
   threads: one each on the 2-core reference VM) into a fresh store;
3. **cluster**: a local 2-node Ray cluster (``ray start``: a head and a worker node, each
   offering half the cores, and ``--threads-per-run`` the same, so both executors run two runs
   at a time on the same threads), the same suite with ``--executor ray`` into another fresh
   store, then the nodes stopped.

Steps 2 and 3 alternate for ``--rounds`` rounds (the median of each is used). The smoke suite
has four runs on two slots, so each slot runs two after another; the extra wall time per run is
``(cluster − local) / 2``. It includes what a suite pays once (joining the cluster, putting the
dataset in the object store, starting Ray's workers), so it overstates a long suite's per-run
cost. Printed as a table and written to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aebench import data
from aebench.experiments.ray_cluster import require_ray
from aebench.experiments.run_task import run_one
from aebench.experiments.suite import load_suite
from aebench.metrics import features

#: a private cluster: no usage stats, and no token authentication (Ray turns it on for
#: clusters started by ``ray start``; the driver would need the head's token otherwise)
RAY_ENV = {"RAY_DISABLE_USAGE_STATS": "1", "RAY_AUTH_MODE": "disabled"}
NODE_START_S = 300.0


def free_port() -> int:
    """A TCP port nothing listens on now (for a Ray head)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def alive_nodes(address: str) -> int:
    """How many nodes of the cluster at ``address`` are alive (0 when it does not answer)."""
    code = (
        f"import ray; ray.init(address={address!r}, include_dashboard=False, "
        "log_to_driver=False); print(sum(n['Alive'] for n in ray.nodes()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **RAY_ENV}, timeout=120)  # fmt: skip
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0


def start_local_cluster(nodes: int, cpus: int) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """A head and ``nodes - 1`` worker nodes on this machine, ``cpus`` CPUs each, started one
    after another (two raylets starting at once on one host race for the session's sockets)."""
    import ray.util

    address = f"{ray.util.get_node_ip_address()}:{free_port()}"
    head = ["--head", f"--port={address.rpartition(':')[2]}", "--include-dashboard=false"]
    procs: list[subprocess.Popen[bytes]] = []
    deadline = time.monotonic() + NODE_START_S
    try:
        for i in range(nodes):
            where = head if i == 0 else [f"--address={address}"]
            procs.append(subprocess.Popen(
                [_ray_cli(), "start", *where, f"--num-cpus={cpus}", "--block",
                 "--disable-usage-stats"], env={**os.environ, **RAY_ENV}, start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
            while alive_nodes(address) < i + 1:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Ray node {i + 1} of {nodes} did not come up")
                time.sleep(1)
    except BaseException:  # a timeout or Ctrl-C: no node outlives the script
        stop_local_cluster(procs)
        raise
    return address, procs


def stop_local_cluster(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop each node's whole process group, workers last to first."""
    for proc in reversed(procs):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:
            continue
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _timed_suite(folder: Path, *executor: str) -> float:
    """Wall seconds of ``aebench run smoke`` into a fresh store in ``folder``, as a user runs it."""
    command = [sys.executable, "-m", "aebench", "run", "smoke", "--quiet",
               "--store", str(folder / "store.sqlite"), *executor]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **RAY_ENV})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds


def quick_run_seconds(folder: Path) -> float:
    """Wall seconds of the quick suite's first run (train + every metric) on one thread."""
    cfg = load_suite("quick").expand()[0]
    started = time.perf_counter()
    result = run_one(cfg, folder / "quick-run", threads=1)
    seconds = time.perf_counter() - started
    if result.status != "done":
        raise RuntimeError(f"the quick run failed: {result.error}")
    return seconds


def measure(rounds: int) -> dict[str, Any]:
    require_ray()  # before the yardstick's minute, not after
    runs, slots = len(load_suite("smoke").expand()), 2
    threads = max(1, (os.cpu_count() or 1) // slots)  # what each of --jobs 2's workers gets
    features.build("domain", data.load("mnist-5k"))  # a cold cache is not part of any timing
    with tempfile.TemporaryDirectory(prefix="aebench-overhead-") as tmp:
        folder = Path(tmp)
        quick_s = quick_run_seconds(folder)
        address, procs = start_local_cluster(slots, threads)
        on_ray = ["--executor", "ray", "--ray-address", address, "--threads-per-run", str(threads)]
        local_s, ray_s = [], []
        try:
            for i in range(rounds):
                local_s.append(_timed_suite(folder / f"local-{i}", "--jobs", str(slots)))
                ray_s.append(_timed_suite(folder / f"ray-{i}", *on_ray))
        finally:
            stop_local_cluster(procs)
    extra_per_run = (statistics.median(ray_s) - statistics.median(local_s)) * slots / runs
    return {
        "quick_run_s": quick_s, "smoke_runs": runs, "slots": slots, "threads_per_run": threads,
        "local_s": local_s, "ray_s": ray_s, "extra_per_run_s": extra_per_run,
        "fraction_of_quick_run": extra_per_run / quick_s,
    }  # fmt: skip


def as_table(result: dict[str, Any]) -> str:
    def secs(values: list[float]) -> str:
        return ", ".join(f"{v:.1f} s" for v in values)

    quick = result["quick_run_s"]
    return "\n".join([
        "| measured | wall time |", "| --- | --- |",
        f"| one quick-suite run (ae, 30 epochs, every metric, 1 thread) | {quick:.1f} s |",
        f"| `aebench run smoke --jobs 2` (local executor) | {secs(result['local_s'])} |",
        f"| `--executor ray` on a local 2-node cluster ({result['threads_per_run']} CPU each) "
        f"| {secs(result['ray_s'])} |",
        f"| extra per run on the cluster (median difference × {result['slots']} slots "
        f"/ {result['smoke_runs']} runs) | {result['extra_per_run_s']:.2f} s |",
        f"| as a share of the quick-suite run | {100 * result['fraction_of_quick_run']:.1f} % |",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aebench.perf.cluster_overhead",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="local/cluster pairs (default 2)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    result = measure(args.rounds)
    print(as_table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
