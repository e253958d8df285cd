"""Hardening, round 2: the store's writer lock by every name of the file, a schema-1 store
whose run config is not a JSON object, ``--executor ray`` without a working Ray, and huge
numbers in option values. Each is one ``aebench: error:`` line, exit 2, and leaves every file
already written byte-identical."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aebench.core.errors import UsageError
from aebench.experiments.suite import load_suite
from aebench.store.database import Store
from tests.conftest import REPO, file_hashes, one_line_error, run_cli, tiny_suite

SUITE = tiny_suite("hard", ["vae"], [0], steps=2)


def refused(out: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a CLI run that must have been refused with exit 2."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and lines[0].startswith("aebench: error:"), out.stderr
    return lines[0]


def done_store(path: Path) -> None:
    """A store holding one finished run of the smoke suite."""
    cfg = load_suite("smoke").expand()[0]
    with Store.open(path) as store, store.lock():
        run_id = store.mark_running(cfg, {"device": "cpu", "threads": 2})
        store.finish(run_id, "done", {"recon_mse": 0.1}, [{"epoch": 1, "train_loss": 2.0}])


# -- a symlink or a hard link to the store does not get past the writer lock -------------------
HOLDER = textwrap.dedent(
    """
    import sys
    from aebench.store.database import Store
    from aebench.experiments.suite import load_suite
    cfg = load_suite(sys.argv[2]).expand()[0]
    store = Store.open(sys.argv[1])
    with store.lock():
        folder = store.artifacts_dir(cfg)
        store.mark_running(cfg, {"device": "cpu"}, artifacts=folder)
        folder.mkdir(parents=True)
        (folder / "checkpoint.pt").write_bytes(b"half-way through training")
        print("locked", flush=True)
        sys.stdin.readline()
    """
)


def test_a_second_writer_through_a_symlink_or_a_hard_link_is_refused(tmp_path: Path) -> None:
    suite, db = tmp_path / "hard.toml", tmp_path / "runs" / "aebench.sqlite"
    suite.write_text(SUITE)
    done_store(db)
    symlink, hardlink = db.with_name("link.sqlite"), db.with_name("hard.sqlite")
    symlink.symlink_to(db.name)
    os.link(db, hardlink)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), str(suite)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = file_hashes(tmp_path)
        assert any("checkpoint.pt" in name for name in before)
        for name in (symlink, hardlink):
            line = refused(run_cli("run", str(suite), "--store", str(name), "--quiet"))
            assert f"in use by pid {holder.pid} " in line, line
            assert file_hashes(tmp_path) == before  # no row marked interrupted, no training
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=60)
    assert not hardlink.with_name("hard.sqlite.lock").exists()
    with Store.open(db, readonly=True) as store:
        assert [r["status"] for r in store.runs()] == ["done", "running"]


def test_the_lock_is_one_for_every_name_of_the_file_within_a_process_too(
    tmp_path: Path,
) -> None:
    db = tmp_path / "aebench.sqlite"
    done_store(db)
    symlink, hardlink = tmp_path / "link.sqlite", tmp_path / "hard.sqlite"
    symlink.symlink_to(db)
    os.link(db, hardlink)
    first = Store.open(db)
    others = [Store.open(symlink), Store.open(hardlink)]
    assert others[0].lock_path == first.lock_path  # beside the file the link resolves to
    with first.lock():
        for other in others:
            with pytest.raises(UsageError, match=rf"in use by pid {os.getpid()} "), other.lock():
                pass
    assert not (tmp_path / "hard.sqlite.lock").exists()  # refused before creating anything
    for other in others:  # free again once the holder let go, by any name
        with other.lock():
            pass
        other.close()
    with first.lock():  # and the holder can take it back
        pass
    first.close()


# -- the lock never closes a descriptor of the database under a SQLite connection --------------
def descriptors(path: Path) -> int:
    """How many descriptors of this process refer to the file at ``path``."""
    st, count = path.stat(), 0
    for name in os.listdir("/proc/self/fd"):
        try:
            other = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue
        count += (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)
    return count


def posix_locks(path: Path) -> list[str]:
    """The POSIX (``fcntl``) locks this process holds on the file at ``path``: SQLite's."""
    st = path.stat()
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    lines = [line.split() for line in Path("/proc/locks").read_text().splitlines()]
    return [
        " ".join(f) for f in lines if f[1:2] == ["POSIX"] and f[4:6] == [str(os.getpid()), device]
    ]


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc")


@needs_proc
def test_releasing_the_lock_keeps_sqlites_own_locks(tmp_path: Path) -> None:
    db = tmp_path / "aebench.sqlite"
    done_store(db)
    assert descriptors(db) == 0  # the store of done_store, locked and closed, left none open
    store = Store.open(db)
    reader = sqlite3.connect(db)  # a connection the store knows nothing of
    assert reader.execute("SELECT count(*) FROM runs").fetchone() == (1,)
    held = posix_locks(db)
    assert held  # WAL mode: each connection keeps a read lock on the database file
    with store.lock():
        pass
    assert posix_locks(db) == held  # released: the database file was only unlocked
    store.close()
    assert posix_locks(db) == held  # the reader's lock outlives the store
    assert reader.execute("SELECT count(*) FROM runs").fetchone() == (1,)
    reader.close()
    Store.open(db, readonly=True).close()  # a later close finds the file free ...
    assert descriptors(db) == 0  # ... and closes the descriptor the lock kept open


WRITER = textwrap.dedent(
    """
    import sqlite3, sys
    for i in range(int(sys.argv[2])):
        conn = sqlite3.connect(sys.argv[1], timeout=60)
        with conn:
            conn.execute(
                "INSERT INTO runs (config_hash, run_name, suite, config, status) "
                "VALUES (?, ?, 'other', '{}', 'pending')", (f"h{i}", f"r{i}"))
        conn.close()  # the last connection to close checkpoints and deletes the -wal
    """
)


@needs_proc
def test_a_store_locked_in_a_loop_beside_another_writer_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "aebench.sqlite"
    done_store(db)
    cfg = load_suite("smoke").expand()[0]
    rounds, inserts = 150, 600
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(inserts)])
    try:
        for i in range(rounds):
            with Store.open(db) as store:
                for part in ("a", "b"):  # lock, write, release, read; twice on one connection
                    with store.lock():
                        store.add_pending([dataclasses.replace(cfg, suite=f"{part}{i}")])
                    assert len(store.runs(suite=f"{part}{i}")) == 1
    finally:
        assert writer.wait(timeout=120) == 0
    assert descriptors(db) == 0
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("SELECT count(*) FROM runs").fetchone() == (1 + 2 * rounds + inserts,)
    conn.close()


# -- a schema-1 store whose run config is not a JSON object ------------------------------------
@pytest.mark.parametrize("config", ["null", '"a bare string"', "[1, 2]", "7"])
def test_a_schema_1_config_that_is_not_an_object_is_one_line(tmp_path: Path, config: str) -> None:
    suite, db = tmp_path / "hard.toml", tmp_path / "runs" / "aebench.sqlite"
    suite.write_text(SUITE)
    done_store(db)
    conn = sqlite3.connect(db)
    with conn:  # what a schema-1 store with an edited config row holds
        conn.execute("DROP TABLE evaluations")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        conn.execute("PRAGMA user_version = 1")
        conn.execute("UPDATE runs SET config = ? WHERE id = 1", (config,))
    conn.close()  # the last connection folds the -wal into the file
    before = file_hashes(tmp_path)
    line = refused(run_cli("run", str(suite), "--store", str(db), "--quiet"))
    assert "cannot upgrade the store: run 1 " in line and "not a JSON object" in line
    assert file_hashes(tmp_path) == before


# -- --executor ray without a working Ray ------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("raise ImportError('libray.so: cannot open shared object file')", "libray.so"),
        ("raise ModuleNotFoundError(\"No module named 'ray'\", name='ray')", "pip install"),
        ("raise RuntimeError('protobuf version clash')", "RuntimeError: protobuf version clash"),
    ],
)
def test_a_ray_that_cannot_be_imported_is_refused_before_the_store(
    tmp_path: Path, body: str, said: str
) -> None:
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(body + "\n")
    suite, new, old = tmp_path / "hard.toml", tmp_path / "new.sqlite", tmp_path / "old.sqlite"
    suite.write_text(SUITE)
    done_store(old)
    before = file_hashes(tmp_path)
    env = {"PYTHONPATH": f"{fake.parent}{os.pathsep}{REPO}"}
    for store in (new, old):
        out = run_cli("run", str(suite), "--executor", "ray", "--store", str(store), env=env)
        line = refused(out)
        assert "ray" in line.lower() and said in line, line
        assert not new.exists()
        assert file_hashes(tmp_path) == before  # no pending rows in the store there was


# -- huge numbers in option values -------------------------------------------------------------
DIGITS_5000 = "9" * 5000  # more digits than Python converts to an int
INT_400 = "9" * 400  # an int, but no float or int64 holds it
FLOAT_400 = "9" * 400 + ".5"  # a float literal that reads as inf
TRAIN = ["train", "vae", "--epochs", "1", "--latent-dim", "4", "--quiet", "--no-eval"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-o", f"lr={DIGITS_5000}"], "lr"),
        (["-o", f"hidden=[{DIGITS_5000}]"], "hidden"),
        (["-o", f"lr={INT_400}"], "lr"),
        (["-o", f"lr={FLOAT_400}"], "lr"),
        (["-o", f"beta=-{INT_400}"], "beta"),
        (["-o", f"hidden=[{INT_400}]"], "hidden[0]"),
        (["--arch", "conv", "-o", f"width={INT_400}"], "width"),
        (["-m", f"n_samples={DIGITS_5000}"], "n_samples"),
        (["-m", f"iw_k={INT_400}"], "iw_k"),
        (["-m", f"kid_subsets={FLOAT_400}"], "kid_subsets"),
        (["-m", f"backbone={DIGITS_5000}"], "backbone"),
    ],
)
def test_huge_numbers_given_to_train_are_one_line(tmp_path, capsys, args, named) -> None:
    out = tmp_path / "run"
    line = one_line_error(capsys, [*TRAIN, *args, "--out", str(out)])
    assert named in line and len(line) < 300, line
    assert not out.exists()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained run folder (one epoch of a 4-d VAE on mnist-5k) for ``aebench eval RUN``."""
    from aebench.cli import main

    out = tmp_path_factory.mktemp("eval") / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    ("item", "named"),
    [
        (f"n_samples={DIGITS_5000}", "n_samples"),
        (f"iw_n={INT_400}", "iw_n"),
        (f"k_nearest={FLOAT_400}", "k_nearest"),
        (f"sampler=[{DIGITS_5000}]", "sampler"),
    ],
)
def test_huge_numbers_given_to_eval_are_one_line(run_folder, capsys, item, named) -> None:
    before = file_hashes(run_folder)
    line = one_line_error(capsys, ["eval", str(run_folder), "-m", item])
    assert named in line and len(line) < 300, line
    assert file_hashes(run_folder) == before  # no metrics.json written


@pytest.mark.parametrize(
    ("table", "value", "named"),
    [
        ("metrics", f"iw_k = {INT_400}", "metrics.iw_k"),
        ("metrics", f"kid_subset_size = {FLOAT_400}", "metrics.kid_subset_size"),
        ("metrics", f"iw_n = {DIGITS_5000}", "hard.toml"),
        ("budget", f"seconds = {INT_400}", "budget.seconds"),
        ("budget", f"seconds = {FLOAT_400}", "budget.seconds"),
        ("overrides.vae", f"lr = {INT_400}", "lr"),
        ("overrides.vae", f"beta = -{INT_400}", "beta"),
        ("overrides.vae", f"hidden = [{INT_400}]", "hidden"),
    ],
)
def test_huge_numbers_in_a_suite_are_one_line(tmp_path, capsys, table, value, named) -> None:
    tables = {"budget": "steps = 2", "metrics": "n_samples = 100", "overrides.vae": ""}
    tables[table] = value if table == "budget" else f"{tables[table]}\n{value}"
    head = SUITE.partition("[budget]")[0]
    suite, db = tmp_path / "hard.toml", tmp_path / "runs" / "aebench.sqlite"
    suite.write_text(head + "".join(f"[{name}]\n{body}\n" for name, body in tables.items()))
    done_store(db)
    before = file_hashes(tmp_path)
    line = one_line_error(capsys, ["run", str(suite), "--store", str(db), "--quiet"])
    assert named in line and "Overflow" not in line and len(line) < 400, line
    assert file_hashes(tmp_path) == before
