"""The results store: round trips, one-transaction writes, refusing files it did not make, the
single-writer lock, crash recovery, migrations, and the runs/export commands."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import aebench.store.database as store_mod
from aebench.core.errors import UsageError
from aebench.experiments.suite import RunConfig, load_suite
from aebench.store.database import Store, environment
from aebench.store.schema import NUMERIC_PACKAGES, git_commit
from tests.conftest import REPO, run_cli


@pytest.fixture
def configs() -> list[RunConfig]:
    return load_suite("smoke").expand()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "aebench.sqlite"


def fill(path: Path, configs: list[RunConfig], n_done: int = 2) -> None:
    with Store.open(path) as store, store.lock():
        for i, cfg in enumerate(configs[:n_done]):
            run_id = store.mark_running(cfg, {"device": "cpu", "threads": 2})
            history = [{"epoch": 1, "step": 10, "train_loss": 2.0 + i}]
            store.finish(run_id, "done", {"recon_mse": 0.1 * (i + 1), "fid": 3.0}, history)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# -- creation and round trip -------------------------------------------------------------------
def test_new_store_has_schema_meta_and_wal(db: Path) -> None:
    store = Store.open(db)
    store.close()
    conn = sqlite3.connect(db)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["schema_version"] == str(store_mod.SCHEMA_VERSION)
    assert meta["created_by"] == "aebench"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == store_mod.APPLICATION_ID
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "runs", "metrics"} <= tables
    conn.close()
    assert not [p for p in db.parent.iterdir() if p.name.endswith(".tmp")]


def test_round_trip(db: Path, configs: list[RunConfig]) -> None:
    env = environment("cpu")
    with Store.open(db) as store, store.lock():
        assert store.add_pending(configs) == len(configs)
        assert store.add_pending(configs) == 0
        run_id = store.mark_running(configs[0], env)
        history = [{"epoch": 1, "step": 5, "train_loss": 1.5}, {"epoch": 2, "train_loss": 1.2}]
        store.finish(run_id, "done", {"recon_mse": 0.25, "fid": float("nan")}, history)
        other = store.mark_running(configs[1], env)
        store.finish(other, "failed", {}, None, error="boom")

        assert store.done_hashes() == {configs[0].config_hash}
        assert store.done_hashes("smoke") == {configs[0].config_hash}
        assert store.done_hashes("elsewhere") == set()
        assert store.metrics(run_id) == {
            "recon_mse": 0.25,
            "fid": pytest.approx(math.nan, nan_ok=True),
        }
        assert store.metrics(run_id, "epoch-2") == {"train_loss": 1.2}
        assert store.metrics(run_id, "epoch-1") == {"step": 5.0, "train_loss": 1.5}
        assert store.count("runs") == len(configs)  # pending rows were reused, not duplicated

        rows = {r["id"]: r for r in store.runs()}
        done = rows[run_id]
        assert done["status"] == "done" and done["config_hash"] == configs[0].config_hash
        assert RunConfig.from_dict(done["config"]) == configs[0]
        assert done["run_name"] == configs[0].run_name and done["suite"] == "smoke"
        assert done["torch_version"] == env["torch_version"] and done["threads"] == env["threads"]
        assert done["packages"] == env["packages"]
        assert done["git_commit"] == env["git_commit"] and done["host"] == env["host"]
        assert done["started_at"] and done["ended_at"] and done["artifacts"]
        assert rows[other]["status"] == "failed" and rows[other]["error"] == "boom"
        assert [r["id"] for r in store.runs(status="failed")] == [other]
        assert len(store.runs(status=["pending", "done"])) == len(configs) - 1

        frame = store.metrics_frame(status="done", phase="final")
    assert list(frame["metric"]) == ["fid", "recon_mse"]
    assert frame.loc[frame.metric == "recon_mse", "value"].item() == 0.25
    assert math.isnan(frame.loc[frame.metric == "fid", "value"].item())
    assert set(frame["model"]) == {configs[0].model} and set(frame["seed"]) == {configs[0].seed}


def test_rerun_reuses_the_row_and_done_runs_are_not_restarted(
    db: Path, configs: list[RunConfig]
) -> None:
    with Store.open(db) as store, store.lock():
        first = store.mark_running(configs[0], {})
        store.finish(first, "diverged", {"recon_mse": 9.0}, error="nan in kl at epoch 1")
        again = store.mark_running(configs[0], {})
        assert again == first and store.metrics(first) == {}
        assert store.runs()[0]["status"] == "running" and store.runs()[0]["error"] is None
        store.finish(again, "done", {"recon_mse": 1.0})
        with pytest.raises(ValueError, match="already done"):
            store.mark_running(configs[0], {})
        assert store.count("runs") == 1
        with pytest.raises(ValueError):
            store.finish(again, "running", {})


def test_writes_need_the_lock_and_readonly_refuses(db: Path, configs: list[RunConfig]) -> None:
    fill(db, configs, 1)
    with Store.open(db) as store, pytest.raises(RuntimeError, match="lock"):
        store.mark_running(configs[1], {})
    with Store.open(db, readonly=True) as ro:
        assert len(ro.runs()) == 1
        with pytest.raises(UsageError, match="read-only"), ro.lock():
            pass


def test_missing_store_when_not_creating(db: Path) -> None:
    with pytest.raises(UsageError, match="no results store"):
        Store.open(db, create=False)
    with pytest.raises(UsageError, match="no results store"):
        Store.open(db, readonly=True)
    assert not db.exists()


def test_default_path_honours_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AEBENCH_STORE", raising=False)
    assert store_mod.default_store_path() == Path("runs/aebench.sqlite")
    monkeypatch.setenv("AEBENCH_STORE", "/x/y.sqlite")
    assert store_mod.default_store_path() == Path("/x/y.sqlite")


def test_environment_fields() -> None:
    env = environment("cpu")
    assert set(env) >= {"git_commit", "aebench_version", "torch_version", "python_version",
                        "device", "threads", "host", "pid"}  # fmt: skip
    assert env["device"] == "cpu" and env["threads"] >= 1 and env["pid"] == os.getpid()
    assert env["git_commit"] is None or len(env["git_commit"].removesuffix("-dirty")) == 40


def test_git_commit_marks_a_tree_with_uncommitted_changes(tmp_path) -> None:
    """A run made from edited code recorded the clean commit: the numbers could not be traced
    to any code. Untracked files (runs/, caches) do not count."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=tmp_path, capture_output=True, text=True, check=True)  # fmt: skip
        return done.stdout.strip()

    git("init", "-q")
    (tmp_path / "model.py").write_text("a = 1\n")
    git("add", "model.py")
    git("commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")
    (tmp_path / "notes.txt").write_text("untracked")
    assert git_commit(tmp_path) == head
    (tmp_path / "model.py").write_text("a = 2\n")
    assert git_commit(tmp_path) == f"{head}-dirty"


def test_environment_records_the_numeric_packages_installed_versions() -> None:
    import numpy
    import PIL
    import scipy
    import sklearn

    from aebench.core.plugins import plugin_code
    from aebench.core.registry import plugin_distributions

    plugins = {*plugin_code(), *plugin_distributions()}  # whatever this process imported
    recorded = [p for p in environment("cpu")["packages"].split(", ") if p not in plugins]
    packages = dict(p.rsplit(" ", 1) for p in recorded)
    assert packages["numpy"] == numpy.__version__ and packages["scipy"] == scipy.__version__
    assert packages["scikit-learn"] == sklearn.__version__
    assert packages["pillow"] == PIL.__version__
    assert set(packages) <= set(NUMERIC_PACKAGES)


# -- one transaction per run ----------------------------------------------------------------
def test_finish_failing_midway_writes_nothing(
    db: Path, configs: list[RunConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = store_mod._metric_rows

    def broken(*args, **kwargs):
        for i, row in enumerate(original(*args, **kwargs)):
            if i == 2:
                raise OSError("disk full (simulated)")
            yield row

    with Store.open(db) as store, store.lock():
        run_id = store.mark_running(configs[0], {})
        monkeypatch.setattr(store_mod, "_metric_rows", broken)
        with pytest.raises(OSError, match="disk full"):
            store.finish(run_id, "done", {"a": 1.0, "b": 2.0, "c": 3.0}, [{"epoch": 1, "l": 1}])
        assert store.count("metrics") == 0
        assert store.runs()[0]["status"] == "running" and store.runs()[0]["ended_at"] is None
        monkeypatch.setattr(store_mod, "_metric_rows", original)
        store.finish(run_id, "done", {"a": 1.0})  # the store is still usable
        assert store.metrics(run_id) == {"a": 1.0}


def test_a_bad_metric_value_rolls_back_the_whole_run(db: Path, configs: list[RunConfig]) -> None:
    with Store.open(db) as store, store.lock():
        run_id = store.mark_running(configs[0], {})
        with pytest.raises((TypeError, ValueError)):
            store.finish(run_id, "done", {"ok": 1.0, "bad": "not a number"})
        assert store.count("metrics") == 0 and store.done_hashes() == set()


# -- refusing files that are not healthy aebench stores ----------------------------------------
def make_foreign(path: Path, wal: bool = False) -> None:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE runs (id INTEGER, config TEXT)")
    conn.execute("INSERT INTO runs VALUES (1, 'precious')")
    conn.commit()
    conn.close()


def make_big_store(path: Path, configs: list[RunConfig]) -> None:
    with Store.open(path) as store, store.lock():
        for k in range(60):
            cfg = configs[k % len(configs)]
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=100 + k))
            run_id = store.mark_running(cfg, {"host": "h" * 200})
            store.finish(run_id, "done", {f"m{j}": float(j) for j in range(40)})


def truncate(path: Path, configs: list[RunConfig]) -> None:
    make_big_store(path, configs)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def corrupt(path: Path, configs: list[RunConfig]) -> None:
    make_big_store(path, configs)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for offset in range(page, len(data), page):  # scribble over every page but the first
        data[offset + 8 : offset + 200] = os.urandom(192)
    path.write_bytes(bytes(data))


def newer(path: Path, configs: list[RunConfig]) -> None:
    fill(path, configs, 1)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


BAD_FILES = {
    "foreign-sqlite": lambda p, c: make_foreign(p),
    "foreign-sqlite-wal": lambda p, c: make_foreign(p, wal=True),
    "text-file": lambda p, c: p.write_text("name,value\nfid,3.0\n"),
    "empty-file": lambda p, c: p.write_bytes(b""),
    "sqlite-magic-only": lambda p, c: p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 20),
    "truncated-store": truncate,
    "corrupt-store": corrupt,
    "newer-schema": newer,
}


@pytest.mark.parametrize("readonly", [False, True], ids=["write", "read"])
@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_files_are_refused_and_left_byte_identical(
    tmp_path: Path, configs: list[RunConfig], kind: str, readonly: bool
) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    path = folder / "results.sqlite"
    BAD_FILES[kind](path, configs)
    for leftover in folder.glob("results.sqlite-*"):
        leftover.unlink()  # a closed WAL database needs neither; their absence is the test
    for lock in folder.glob("*.lock"):
        lock.unlink()
    before = snapshot(folder)
    with pytest.raises(UsageError) as info:
        Store.open(path, readonly=readonly)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    if kind == "newer-schema":
        assert "newer aebench" in message
    assert snapshot(folder) == before  # byte-identical, and no -wal/-shm/lock files appeared


def test_cli_refuses_a_foreign_store_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    make_foreign(path)
    before = path.read_bytes()
    out = run_cli("runs", "--store", str(path), timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "not an aebench store" in out.stderr and path.read_bytes() == before


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="directory"):
        Store.open(tmp_path)


# -- one writer --------------------------------------------------------------------------------
HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from aebench.store.database import Store
    store = Store.open(sys.argv[1])
    with store.lock():
        print("locked", flush=True)
        sys.stdin.readline()
    """
)


def hold_lock(db: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_is_refused_while_first_holds_the_lock(
    db: Path, configs: list[RunConfig]
) -> None:
    fill(db, configs, 1)
    proc = hold_lock(db)
    try:
        with Store.open(db) as store:
            with pytest.raises(UsageError, match=rf"in use by pid {proc.pid}"), store.lock():
                pass
            assert len(store.runs()) == 1  # reading is fine meanwhile
        out = run_cli("run", "smoke", "--store", str(db), "--quiet", timeout=300)
        assert out.returncode == 2, out.stderr
        assert "in use" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    finally:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(timeout=60)
    with Store.open(db) as store:
        assert store.count("runs") == 1 and store.count("metrics") == 4  # nothing lost
        with store.lock():  # free again once the holder has gone
            pass


def test_lock_is_exclusive_within_one_process_too(db: Path) -> None:
    a, b = Store.open(db), Store.open(db)
    with a.lock():
        with pytest.raises(UsageError, match="in use"), b.lock():
            pass
        with pytest.raises(RuntimeError, match="reentrant"), a.lock():
            pass
    with b.lock():
        pass
    a.close()
    b.close()


# -- crash recovery --------------------------------------------------------------------------------
KILLED_MID_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from aebench.store.database import Store, environment
    from aebench.experiments.suite import load_suite
    cfgs = load_suite("smoke").expand()
    store = Store.open(sys.argv[1])
    with store.lock():
        rid = store.mark_running(cfgs[0], environment("cpu"))
        store.finish(rid, "done", {"recon_mse": 0.5})
        store.mark_running(cfgs[1], environment("cpu"))
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_run_left_running_by_a_killed_process_is_rerun_without_duplicates(
    db: Path, configs: list[RunConfig]
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_MID_RUN, str(db)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert proc.returncode == -9
    with Store.open(db) as store, store.lock():  # the dead process's lock is gone with it
        statuses = [r["status"] for r in store.runs()]
        assert statuses == ["done", "running"]
        assert store.recover_stale() == 1
        stale = store.runs()[1]
        assert stale["status"] == "interrupted" and "ended without finishing" in stale["error"]
        assert store.done_hashes() == {configs[0].config_hash}
        run_id = store.mark_running(configs[1], {})
        assert run_id == stale["id"]
        store.finish(run_id, "done", {"recon_mse": 0.7})
        assert store.count("runs") == 2
        assert store.done_hashes() == {c.config_hash for c in configs[:2]}
        assert store.metrics(store.runs()[0]["id"]) == {"recon_mse": 0.5}  # untouched


# -- migrations --------------------------------------------------------------------------------
def test_migration_hook_upgrades_an_old_store(
    db: Path, configs: list[RunConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(db, configs, 1)

    def add_notes(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE runs ADD COLUMN notes TEXT")

    current = store_mod.SCHEMA_VERSION
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(store_mod.MIGRATIONS, current, add_notes)
    with pytest.raises(UsageError, match="upgrade"):
        Store.open(db, readonly=True)  # readers never migrate
    with Store.open(db) as store:
        assert store.schema_version == current + 1
        assert "notes" in store.runs()[0] and store.count("metrics") == 4


def _as_schema(db: Path, version: int, *statements: str) -> None:
    """Make ``db`` what an older aebench wrote: run ``statements``, then mark it ``version``."""
    with sqlite3.connect(db) as conn:
        for sql in statements:
            conn.execute(sql)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


def test_schema_7_adds_the_packages_column_to_a_schema_6_store(
    db: Path, configs: list[RunConfig]
) -> None:
    fill(db, configs, 2)
    _as_schema(db, 6, "ALTER TABLE runs DROP COLUMN packages")
    with Store.open(db) as store:
        assert store.schema_version == store_mod.SCHEMA_VERSION
        rows = store.runs()
        assert [r["packages"] for r in rows] == [None, None]  # not known for older runs
        assert store.metrics(rows[0]["id"]) == {"recon_mse": 0.1, "fid": 3.0}


def test_schema_8_adds_where_a_re_evaluation_ran_to_a_schema_7_store(
    db: Path, configs: list[RunConfig]
) -> None:
    fill(db, configs, 2)
    _as_schema(db, 7, "INSERT INTO evaluations (run_id, family, options) VALUES (1, 'fid', 'k')",
               "ALTER TABLE evaluations DROP COLUMN environment")  # fmt: skip
    with Store.open(db) as store, store.lock():
        assert store.schema_version == store_mod.SCHEMA_VERSION
        assert store.evaluations(1) == {"fid": "k"} and store.reevaluations(1) == {}
        store.record_evaluation(1, {}, {"fid": ((), "k2")}, environment='{"host": "h"}')
        assert store.reevaluations(1) == {"fid": '{"host": "h"}'}


def _schema_2_store(db: Path, cfgs: list[RunConfig]) -> None:
    """What a store held before schema 3: ``beta-vae`` runs with no beta option (its default,
    then 4, was dropped from the options like any default)."""
    fill(db, cfgs, len(cfgs))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        # and its hashes were identity version 2's, with no resolved options recorded
        for run_id, text in conn.execute("SELECT id, config FROM runs").fetchall():
            data = json.loads(text)
            data.pop("resolved_options")
            data["config_hash"] = RunConfig.from_dict(data).hash_at(2)
            conn.execute(
                "UPDATE runs SET config_hash = ?, config = ? WHERE id = ?",
                (data["config_hash"], json.dumps(data), run_id),
            )
    conn.close()


def test_schema_3_writes_out_the_beta_old_beta_vae_runs_trained_with(db: Path) -> None:
    old = RunConfig(model="beta-vae", suite="s")
    vae = RunConfig(model="vae", suite="s")
    _schema_2_store(db, [old, vae])
    with Store.open(db) as store:
        assert store.schema_version == store_mod.SCHEMA_VERSION
        rows = {r["run_name"]: r for r in store.runs()}
        done = store.done_hashes()
    migrated = RunConfig.from_dict(rows[old.run_name]["config"])
    assert migrated.options == {"beta": 4.0}
    assert migrated.config_hash == RunConfig(model="beta-vae", suite="s",
                                             model_options={"beta": 4.0}).config_hash  # fmt: skip
    assert old.config_hash not in done  # a beta = 2 run of today is not done by it
    assert vae.config_hash in done  # other models keep their hashes
    assert rows[vae.run_name]["config_hash"] == vae.config_hash


def test_a_report_keeps_old_beta_vae_runs_apart_from_new_ones(db: Path, tmp_path: Path) -> None:
    from aebench.report import build_report

    _schema_2_store(db, [RunConfig(model="beta-vae", suite="s")])  # a beta = 4 run of old
    fill(db, [RunConfig(model="beta-vae", suite="s", train=dataclasses.replace(
        RunConfig(model="vae").train, seed=1))], 1)  # a beta = 2 run of today  # fmt: skip
    result = build_report(db, tmp_path / "report", figures=False)
    assert sorted(result.data.runs["label"]) == ["beta-vae", "beta-vae [beta=4.0]"]
    assert list(result.table.summary["n_runs"]) == [1, 1]


def test_schema_3_refuses_a_store_where_writing_beta_out_makes_two_runs_one(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    explicit = RunConfig(model="beta-vae", suite="s", model_options={"beta": 4.0}, label="b4")
    _schema_2_store(db, [RunConfig(model="beta-vae", suite="s"), explicit])
    before = db.read_bytes()
    with pytest.raises(UsageError, match="same run once"):
        Store.open(db)
    assert db.read_bytes() == before  # still schema 2, byte for byte


def test_failed_migration_leaves_the_old_version(
    db: Path, configs: list[RunConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(db, configs, 1)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE runs ADD COLUMN notes TEXT")
        raise RuntimeError("migration bug")

    current = store_mod.SCHEMA_VERSION
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(store_mod.MIGRATIONS, current, broken)
    with pytest.raises(RuntimeError, match="migration bug"):
        Store.open(db)
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", current)
    with Store.open(db) as store:
        assert store.schema_version == current and "notes" not in store.runs()[0]


# -- the runs and export commands ------------------------------------------------------------
def test_runs_command_lists_runs(db: Path, configs: list[RunConfig]) -> None:
    fill(db, configs, 2)
    out = run_cli("runs", "--store", str(db), timeout=120)
    assert out.returncode == 0, out.stderr
    for cfg in configs[:2]:
        assert cfg.run_name in out.stdout
    assert "2 done" in out.stdout
    out = run_cli("runs", "--store", str(db), "--status", "failed", timeout=120)
    assert out.returncode == 0 and "no runs match" in out.stdout


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_parses_back(tmp_path: Path, db: Path, configs: list[RunConfig], fmt: str) -> None:
    fill(db, configs, 2)
    target = tmp_path / f"metrics.{fmt}"
    from aebench.cli import main  # in-process: the CLI path without a fresh interpreter each time

    assert main(["export", "--store", str(db), "--format", fmt, "--out", str(target)]) == 0
    readers = {
        "csv": pd.read_csv,
        "json": lambda p: pd.DataFrame(json.loads(p.read_text())),
        "parquet": pd.read_parquet,
    }
    frame = readers[fmt](target)
    final = frame[frame.phase == "final"]
    assert len(frame) == 2 * 2 + 2 * 2  # two final metrics + two history values per run
    got = dict(zip(final.run_name + "/" + final.metric, final.value, strict=True))
    assert got == {
        f"{configs[0].run_name}/recon_mse": pytest.approx(0.1),
        f"{configs[0].run_name}/fid": 3.0,
        f"{configs[1].run_name}/recon_mse": pytest.approx(0.2),
        f"{configs[1].run_name}/fid": 3.0,
    }
    assert set(frame.columns) >= {"run_id", "suite", "model", "dataset", "arch", "seed", "metric"}


def test_export_errors_are_one_line(tmp_path: Path, db: Path, configs: list[RunConfig]) -> None:
    fill(db, configs, 1)
    out = run_cli("export", "--store", str(db), "--out", str(tmp_path), "--format", "csv")
    assert out.returncode == 2 and "directory" in out.stderr
    out = run_cli("export", "--store", str(db), "--out", str(tmp_path / "m.xyz"))
    assert out.returncode == 2 and "--format" in out.stderr


def test_parquet_export_without_a_parquet_engine_says_what_to_install(
    tmp_path: Path, db: Path, configs: list[RunConfig], monkeypatch, capsys
) -> None:
    import importlib.util

    from aebench.cli import main

    fill(db, configs, 1)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("pyarrow", "fastparquet") else real(name, *a),
    )
    assert main(["export", "--store", str(db), "--out", str(tmp_path / "m.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install pyarrow" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.parquet").exists()


def test_a_store_that_grows_to_its_header_size_while_read_is_not_called_truncated(
    tmp_path: Path,
) -> None:
    """Another process's WAL checkpoint writes the header's new page count before the pages
    that extend the file: a store short for a moment is read again, not refused. One that
    stays short is (the truncated-store case above)."""
    import threading

    from aebench.store import files

    path = tmp_path / "aebench.sqlite"
    fill(path, load_suite("smoke").expand(), 1)
    whole = path.read_bytes()
    page = int.from_bytes(whole[16:18], "big")
    path.write_bytes(whole[:-page])  # one page short of what its header says
    grow = threading.Timer(files.TRUNCATION_PAUSE_S * 1.5, path.write_bytes, [whole])
    grow.start()
    try:
        files._check_header(path)  # rereads until the file is whole
    finally:
        grow.join()
    path.write_bytes(whole[:-page])
    with pytest.raises(UsageError, match="truncated"):
        files._check_header(path)


def test_a_finishing_worker_without_a_commit_keeps_the_recorded_one(
    db: Path, configs: list[RunConfig]
) -> None:
    """A Ray worker with no git checkout finishes with git_commit None; that used to erase
    the commit recorded when the run started. Values it does have (host, threads) win."""
    start = {**environment("cpu"), "git_commit": "a" * 40, "host": "driver"}
    with Store.open(db) as store, store.lock():
        run_id = store.mark_running(configs[0], start)
        worker = {**environment("cpu"), "git_commit": None, "host": "worker", "threads": 3}
        store.finish(run_id, "done", {"recon_mse": 0.1}, environment=worker)
        (row,) = [r for r in store.runs() if r["id"] == run_id]
    assert (row["git_commit"], row["host"], row["threads"]) == ("a" * 40, "worker", 3)


def test_schema_9_puts_the_image_folder_into_its_runs_hashes(
    db: Path, configs: list[RunConfig], tmp_path: Path, monkeypatch
) -> None:
    """A store written before: its image-folder run has the hash without the folder and the
    folder as typed, relative. The upgrade records the folder absolute and hashes it, so the
    suite of that folder finds the run done from any working folder, a suite of another
    folder does not, and the config reads back as the run's; other runs keep their hash."""
    folder = dataclasses.replace(configs[0], dataset="image-folder", data_dir="/x/digits-a")
    fill(db, [folder, configs[1]], 2)
    monkeypatch.chdir(tmp_path)
    old_config = {**json.loads(folder.to_json()), "data_dir": "digits-a"}
    old_config["config_hash"] = dataclasses.replace(folder, data_dir=str(tmp_path / "digits-a")
                                                    ).hash_at(3, folder=False)  # fmt: skip
    with sqlite3.connect(db) as conn:
        row = (old_config["config_hash"], json.dumps(old_config), folder.run_name)
        conn.execute("UPDATE runs SET config_hash = ?, config = ? WHERE run_name = ?", row)
    conn.close()
    _as_schema(db, 8)
    with Store.open(db) as store, store.lock():
        assert store.schema_version == store_mod.SCHEMA_VERSION
    here = dataclasses.replace(folder, data_dir=str(tmp_path / "digits-a"))
    monkeypatch.chdir(db.parent)  # another working folder
    with Store.open(db, readonly=True) as store:
        rows = {r["run_name"]: r for r in store.runs()}
        done = store.done_hashes(folder.suite)  # what `aebench run` skips
    assert rows[folder.run_name]["config"]["data_dir"] == str(tmp_path / "digits-a")
    assert rows[folder.run_name]["config_hash"] == here.config_hash
    assert RunConfig.from_dict(rows[folder.run_name]["config"]).config_hash == here.config_hash
    assert rows[configs[1].run_name]["config_hash"] == configs[1].config_hash
    other = dataclasses.replace(folder, data_dir=str(tmp_path / "digits-b"))
    assert here.config_hash in done and other.config_hash not in done


def _recorded_before_mmd_weight(cfg: RunConfig, overrides: dict, lam: float) -> dict:
    """``cfg``'s stored config as aebench wrote it before 2026-12-06: info-vae's MMD weight
    recorded as the paper's ``lam`` (weight α + lam − 1), hashed as it was then."""
    data = json.loads(cfg.to_json())
    resolved = {k: v for k, v in data["resolved_options"].items() if k != "mmd_weight"}
    data["resolved_options"] = {**resolved, "lam": lam}
    data["model_options"] = overrides
    then = dataclasses.replace(cfg, model_options=overrides, resolved=tuple(sorted(
        data["resolved_options"].items())))  # fmt: skip
    data["config_hash"] = then.config_hash
    return data


def test_schema_10_writes_info_vaes_retired_lam_as_its_mmd_weight(
    db: Path, configs: list[RunConfig]
) -> None:
    """info-vae's ``lam`` (the paper's λ) became ``mmd_weight`` (α + λ − 1). An old default run
    (lam = 1000) is today's default run (mmd_weight = 999): same hash, found done, no lam left;
    one with alpha = 0.5 keeps its weight 999.5 written out; other runs keep their hashes."""
    base = dataclasses.replace(configs[0], model="info-vae", label="info-vae")
    half = dataclasses.replace(base, label="info-half", model_options={"alpha": 0.5})
    fill(db, [base, half, configs[1]], 3)
    old = {
        base.run_name: _recorded_before_mmd_weight(base, {}, 1000.0),
        half.run_name: _recorded_before_mmd_weight(half, {"alpha": 0.5}, 1000.0),
    }
    with sqlite3.connect(db) as conn:
        for name, data in old.items():
            row = (data["config_hash"], json.dumps(data), name)
            conn.execute("UPDATE runs SET config_hash = ?, config = ? WHERE run_name = ?", row)
    conn.close()
    _as_schema(db, 9)
    with Store.open(db) as store, store.lock():
        assert store.schema_version == store_mod.SCHEMA_VERSION
    with Store.open(db, readonly=True) as store:
        rows = {r["run_name"]: r for r in store.runs()}
        done = store.done_hashes(base.suite)
    assert base.config_hash in done and rows[base.run_name]["config_hash"] == base.config_hash
    assert "lam" not in rows[base.run_name]["config"]["resolved_options"]
    moved = RunConfig.from_dict(rows[half.run_name]["config"])
    assert moved.options == {"alpha": 0.5, "mmd_weight": 999.5}
    assert moved.resolved_options["mmd_weight"] == 999.5 and half.config_hash not in done
    assert rows[configs[1].run_name]["config_hash"] == configs[1].config_hash


def test_schema_10_leaves_rows_it_has_nothing_to_upgrade_in_as_they_were(
    db: Path, configs: list[RunConfig]
) -> None:
    """A damaged row of another model (config ``null``) has nothing to upgrade: the store
    still upgrades, and the row is left byte for byte; a damaged retired option in a config
    read back is one line, not a traceback."""
    fill(db, configs, 2)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET config = 'null' WHERE run_name = ?", (configs[1].run_name,))
    conn.close()
    _as_schema(db, 9)
    with Store.open(db) as store, store.lock():
        assert store.schema_version == store_mod.SCHEMA_VERSION
    with sqlite3.connect(db) as conn:
        (text,) = conn.execute(
            "SELECT config FROM runs WHERE run_name = ?", (configs[1].run_name,)
        ).fetchone()
    conn.close()
    assert text == "null"
    info = json.loads(dataclasses.replace(configs[0], model="info-vae").to_json())
    info.pop("config_hash")
    info["resolved_options"] = {**info["resolved_options"], "lam": "x"}
    info["resolved_options"].pop("mmd_weight")
    with pytest.raises(UsageError, match="malformed run config") as err:
        RunConfig.from_dict(info)
    assert "\n" not in str(err.value)
