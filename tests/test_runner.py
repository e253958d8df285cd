"""Suites end to end: a fresh run, resume after SIGKILL, failing runs, Ray, divergence."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aebench.store.database import Store
from tests.conftest import REPO, run_cli

TINY = """
name = "tiny"
models = ["ae", "vae"]
datasets = ["mnist-5k"]
archs = ["mlp"]
seeds = [0, 1]
batch_size = 128
latent_dim = 4
device = "cpu"

[budget]
steps = 6

[metrics]
n_samples = 100
iw_k = 4
iw_n = 16
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _rows(db):
    with sqlite3.connect(db) as conn:
        runs = conn.execute("SELECT id, config_hash, status, ended_at FROM runs ORDER BY id")
        return runs.fetchall()


def test_fresh_run_stores_every_metric_and_a_second_run_does_nothing(tiny, tmp_path, cache_env):
    db = tmp_path / "s.sqlite"
    first = run_cli("run", str(tiny), "--store", str(db), "--quiet", env=cache_env)
    assert first.returncode == 0, first.stderr
    with Store.open(db, readonly=True) as store:
        runs = store.runs(suite="tiny")
        assert len(runs) == 4 and {r["status"] for r in runs} == {"done"}
        assert len({r["config_hash"] for r in runs}) == 4
        for r in runs:
            m = store.metrics(r["id"])
            for key in (
                "recon_mse",
                "recon_bce",
                "psnr",
                "ssim",
                "fid",
                "kid_mean",
                "precision",
                "recall",
                "density",
                "coverage",
                "sharpness_samples",
                "sharpness_recon",
                "train_samples_per_s",
                "encode_samples_per_s",
                "latency_ms_p50",
                "peak_mem_mb",
            ):
                assert key in m, (r["run_name"], key)
            is_vae = r["config"]["model"] == "vae"
            for key in ("kl", "elbo", "nll_iw", "iw_gain", "active_units"):
                assert (key in m) == is_vae, (r["run_name"], key)
            assert (REPO / r["artifacts"]).exists() or os.path.exists(r["artifacts"])
    before = _rows(db)
    second = run_cli("run", str(tiny), "--store", str(db), "--quiet", env=cache_env)
    assert second.returncode == 0, second.stderr
    assert "all 4 runs are already done" in second.stdout
    assert _rows(db) == before


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_sigkill_in_the_second_run_then_restart_finishes_without_duplicates(
    tiny, tmp_path, cache_env, executor
):
    """The driver killed mid-suite (issue 28 for Ray: its local cluster dies with it) resumes
    with the same command: no run lost, none twice, finished rows untouched."""
    if executor == "ray":
        pytest.importorskip("ray", reason="Ray is the optional extra aebench[ray]")
        # a Ray of its own, never a cluster an earlier `ray start` left behind
        cache_env = {**cache_env, "RAY_ADDRESS": "127.0.0.1:1", "RAY_DISABLE_USAGE_STATS": "1"}
    db = tmp_path / "s.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO), **cache_env}
    command = ["run", str(tiny), "--store", str(db), "--quiet", "--executor", executor]
    proc = subprocess.Popen(
        [sys.executable, "-m", "aebench", *command],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 400
    done_first = None
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                rows = _rows(db)
            except sqlite3.OperationalError:
                rows = []
            # a run done and one still running (Ray runs two at once: both may finish together)
            if any(r[2] == "done" for r in rows) and any(r[2] == "running" for r in rows):
                done_first = [r for r in rows if r[2] == "done"]
                break
        time.sleep(0.05)
    assert done_first, "the suite never reached its second run"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = run_cli(*command, env=cache_env)
    assert again.returncode == 0, again.stderr
    rows = _rows(db)
    assert len(rows) == 4 and {r[2] for r in rows} == {"done"}
    assert len({r[1] for r in rows}) == 4
    finished = {r[0] for r in done_first}
    assert [r for r in rows if r[0] in finished] == done_first  # untouched


def test_a_failing_run_is_recorded_and_the_suite_goes_on(tmp_path, cache_env):
    suite = tmp_path / "mixed.toml"
    suite.write_text(
        TINY.replace('name = "tiny"', 'name = "mixed"')
        .replace('datasets = ["mnist-5k"]', 'datasets = ["mnist-5k", "image-folder"]')
        .replace("seeds = [0, 1]", "seeds = [0]")
        + "\n"
    )
    text = suite.read_text().replace(
        'device = "cpu"', f'device = "cpu"\ndata_dir = "{tmp_path / "missing"}"'
    )
    suite.write_text(text)
    db = tmp_path / "s.sqlite"
    result = run_cli("run", str(suite), "--store", str(db), "--quiet", env=cache_env)
    assert result.returncode == 1
    assert "2 done, 2 failed" in result.stdout
    assert "image-folder" in result.stderr and "does not exist" in result.stderr
    with Store.open(db, readonly=True) as store:
        failed = store.runs(suite="mixed", status="failed")
        assert len(failed) == 2 and all("does not exist" in r["error"] for r in failed)
        assert len(store.runs(suite="mixed", status="done")) == 2


def test_parallel_plan_starts_the_costliest_runs_first_and_warms_the_feature_cache(
    tmp_path, monkeypatch
):
    from aebench.experiments.runner import plan_parallel
    from aebench.experiments.suite import parse_suite

    monkeypatch.setenv("AEBENCH_CACHE_DIR", str(tmp_path))
    built = []
    monkeypatch.setattr(
        "aebench.metrics.features.build", lambda name, data, **kw: built.append((name, data.name))
    )
    suite = parse_suite(TINY.replace('["ae", "vae"]', '["ae", "vae-gan", "vae"]'), "t.toml")
    order = [c.model for c in plan_parallel(suite.expand())]
    assert order == ["vae-gan", "vae-gan", "vae", "vae", "ae", "ae"]
    assert built == [("domain", "mnist-5k")]  # once per dataset, not once per run


def test_parallel_plan_starts_iwae_at_k_50_first_and_ties_k_1_with_the_vae(tmp_path, monkeypatch):
    """An IWAE step decodes K codes per image (Burda et al.'s K = 50 run is the suite's longest),
    though its parameters are the VAE's: the plan weighs the step by the codes it decodes."""
    from aebench.experiments.runner import plan_parallel
    from aebench.experiments.suite import parse_suite

    monkeypatch.setenv("AEBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr("aebench.metrics.features.build", lambda name, data, **kw: None)
    grid = (
        '["vae", { model = "iwae", label = "k1", k = 1 }, '
        '{ model = "iwae", label = "k50", k = 50 }]'
    )
    suite = parse_suite(TINY.replace('["ae", "vae"]', grid), "t.toml")
    order = [c.label for c in plan_parallel(suite.expand())]
    assert order == ["k50", "k50", "vae", "vae", "k1", "k1"]


@pytest.mark.slow  # three executors, one a Ray of its own (~45 s)
def test_ray_and_two_local_jobs_match_the_sequential_executor(tiny, tmp_path, cache_env):
    pytest.importorskip("ray", reason="Ray is the optional extra aebench[ray]")
    local, remote = tmp_path / "local.sqlite", tmp_path / "ray.sqlite"
    jobs2 = tmp_path / "jobs2.sqlite"
    assert (
        run_cli("run", str(tiny), "--store", str(local), "--quiet", env=cache_env).returncode == 0
    )
    result = run_cli(
        "run", str(tiny), "--store", str(jobs2), "--jobs", "2", "--quiet", env=cache_env
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    result = run_cli(
        "run",
        str(tiny),
        "--store",
        str(remote),
        "--executor",
        "ray",
        "--quiet",
        env={**cache_env, "RAY_DISABLE_USAGE_STATS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    deterministic = ("recon_mse", "recon_bce", "psnr", "kl", "elbo", "nll_iw", "fid")
    with Store.open(jobs2, readonly=True) as store:
        # each of the two workers ran on half the cores, and the store says so (not the
        # driver's thread count)
        assert {r["threads"] for r in store.runs()} == {max(1, (os.cpu_count() or 1) // 2)}
    for other in (remote, jobs2):
        with Store.open(local, readonly=True) as a, Store.open(other, readonly=True) as b:
            ra = {r["config_hash"]: r for r in a.runs(suite="tiny")}
            rb = {r["config_hash"]: r for r in b.runs(suite="tiny")}
            assert ra.keys() == rb.keys() and {r["status"] for r in rb.values()} == {"done"}
            for h in ra:
                ma, mb = a.metrics(ra[h]["id"]), b.metrics(rb[h]["id"])
                assert ma.keys() == mb.keys()
                for key in deterministic:
                    if key in ma:
                        assert mb[key] == pytest.approx(ma[key], rel=1e-4), (other.name, key)


def test_sigint_marks_the_run_interrupted_exits_130_and_resumes(tiny, tmp_path, cache_env):
    text = tiny.read_text().replace("steps = 6", "epochs = 3")
    tiny.write_text(text)
    db = tmp_path / "s.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO), **cache_env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aebench", "run", str(tiny), "--store", str(db), "--quiet"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if list((tmp_path / "artifacts").rglob("checkpoint.safetensors")):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Resume with the same command" in err and "Traceback" not in err
    statuses = [r[2] for r in _rows(db)]
    assert "interrupted" in statuses and "running" not in statuses
    # the hint names the suite as it was given (a TOML path here, whose suite name "tiny" is
    # no shipped suite), so running exactly the hinted command resumes (issue 13, item 15)
    hint = err.split("(aebench ", 1)[1].split(").", 1)[0]
    assert shlex.split(hint)[:2] == ["run", str(tiny)]
    again = run_cli(*shlex.split(hint), "--quiet", env=cache_env)
    assert again.returncode == 0, again.stderr
    assert {r[2] for r in _rows(db)} == {"done"} and len(_rows(db)) == 4


def _start_long_parallel_suite(tiny, tmp_path, cache_env) -> tuple[subprocess.Popen, Path]:
    """``aebench run --jobs 2`` on a suite far too long to finish, in its own process group (as
    a shell runs a foreground job); returns the process and its store."""
    tiny.write_text(tiny.read_text().replace("steps = 6", "epochs = 500"))
    db = tmp_path / "s.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO), **cache_env}
    cmd = [sys.executable, "-m", "aebench", "run", str(tiny), "--store", str(db), "--quiet"]
    proc = subprocess.Popen(
        [*cmd, "--jobs", "2"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return proc, db


def _wait_for_checkpoints(proc: subprocess.Popen, tmp_path: Path, n: int) -> None:
    deadline = time.monotonic() + 300
    while len(list((tmp_path / "artifacts").rglob("checkpoint.safetensors"))) < n:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"no {n} checkpoints after 300 s"
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.slow  # a driver and its worker processes, interrupted (~8 s each)
@pytest.mark.parametrize("how", ["ctrl-c to the process group", "sigterm to the driver"])
def test_a_parallel_run_stops_promptly_when_interrupted(how, tiny, tmp_path, cache_env):
    """--jobs 2: running workers checkpoint and stop and queued runs never start, instead of
    the driver waiting for every queued run to finish."""
    proc, db = _start_long_parallel_suite(tiny, tmp_path, cache_env)
    _wait_for_checkpoints(proc, tmp_path, 2)  # both workers are training
    if how.startswith("ctrl-c"):
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Resume with the same command" in err and "Traceback" not in err
    statuses = sorted(r[2] for r in _rows(db))  # the two runs that never started stay pending
    assert statuses == ["interrupted", "interrupted", "pending", "pending"], statuses
    assert len(list((tmp_path / "artifacts").rglob("checkpoint.safetensors"))) >= 2
    deadline = time.monotonic() + 20  # no worker outlives the driver (init reaps the last)
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("a worker process outlived the interrupted driver")


@pytest.mark.slow  # a worker process killed mid-suite (~10 s)
def test_a_dead_worker_fails_its_runs_and_the_suite_goes_on(tiny, tmp_path, cache_env):
    """--jobs 2: SIGKILL one worker (as the OOM killer would). The runs in flight are recorded
    as failed with a one-line reason and a fresh pool runs the queued ones."""
    proc, db = _start_long_parallel_suite(tiny, tmp_path, cache_env)
    _wait_for_checkpoints(proc, tmp_path, 2)  # both workers are training
    workers = [pid for pid in _children(proc.pid) if b"spawn_main" in _cmdline(pid)]
    os.kill(workers[0], signal.SIGKILL)
    _wait_for_checkpoints(proc, tmp_path, 4)  # the queued runs train in a fresh pool
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    with Store.open(db, readonly=True) as store:
        runs = store.runs(suite="tiny")
    assert sorted(r["status"] for r in runs) == ["failed", "failed", "interrupted", "interrupted"]
    assert all("worker process died" in r["error"] for r in runs if r["status"] == "failed")


def test_a_planted_nan_is_stored_as_diverged_and_the_suite_completes(
    tmp_path, cache_env, monkeypatch
):
    import torch

    from aebench import models
    from aebench.experiments.runner import run_suite
    from aebench.experiments.suite import Suite
    from aebench.models.vae import VAE

    class NaNAtStep(VAE):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.calls = 0

        def loss(self, x):
            terms = super().loss(x)
            self.calls += 1
            if self.calls >= 3 and self.training:
                terms["kl"] = terms["kl"] * torch.tensor(float("nan"))
                terms["loss"] = terms["recon"] + terms["kl"]
            return terms

    monkeypatch.setenv("AEBENCH_CACHE_DIR", cache_env["AEBENCH_CACHE_DIR"])
    models.register("test-nan-vae")(NaNAtStep)
    try:
        import tomllib

        data = tomllib.loads(TINY)
        data["models"] = ["test-nan-vae", "ae"]
        data["seeds"] = [0]
        suite = Suite.from_dict(data, source="test")
        db = tmp_path / "s.sqlite"
        code = run_suite(suite, db, quiet=True)
        assert code == 1
        with Store.open(db, readonly=True) as store:
            (bad,) = store.runs(suite="tiny", status="diverged")
            assert "test-nan-vae diverged: loss term 'kl' is nan" in bad["error"]
            assert len(store.runs(suite="tiny", status="done")) == 1
    finally:
        models.unregister("test-nan-vae")


def test_a_run_stopped_while_evaluated_is_evaluated_again_not_trained_again(
    tiny, tmp_path, cache_env, monkeypatch
):
    """A kill during evaluation leaves weights, config and history but no checkpoint and no
    metrics: the next attempt loads that training and evaluates it, to the same numbers."""
    from aebench.experiments.run_task import run_one
    from aebench.experiments.suite import load_suite

    monkeypatch.setenv("AEBENCH_CACHE_DIR", cache_env["AEBENCH_CACHE_DIR"])
    cfg = next(c for c in load_suite(tiny).expand() if c.model == "vae")
    out = tmp_path / "run"
    first = run_one(cfg, out)
    assert first.status == "done", first.error
    (out / "metrics.json").unlink()  # what a kill during evaluation leaves
    weights, config = (out / "model.safetensors").stat(), (out / "config.json").read_bytes()
    again = run_one(cfg, out)
    assert again.status == "done", again.error
    assert (out / "metrics.json").is_file()
    now = (out / "model.safetensors").stat()
    assert (now.st_ino, now.st_mtime_ns) == (weights.st_ino, weights.st_mtime_ns)  # not rewritten
    assert (out / "config.json").read_bytes() == config  # its start time and wall time kept
    timed = ("_per_s", "latency", "peak_mem", "seconds")
    same = {k: v for k, v in first.scores.items() if not any(t in k for t in timed)}
    assert {k: again.scores[k] for k in same} == same and "nll_iw" in same
    assert again.history == first.history

    # another run's folder is not this run's training: it trains anew (files rewritten)
    other = next(c for c in load_suite(tiny).expand() if c.model == "ae")
    (out / "metrics.json").unlink()
    done = run_one(other, out)
    assert done.status == "done", done.error
    assert json.loads((out / "config.json").read_text())["model"] == "ae"  # trained anew
    assert (out / "model.safetensors").stat().st_size != weights.st_size  # the AE's weights
