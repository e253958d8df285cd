"""The results store: one embedded SQLite file (``runs/aebench.sqlite`` by default).

Why SQLite: a suite runs for hours and gets killed; results must survive that, stay queryable
across code versions, and need no server. Three tables:

* ``meta``    — ``schema_version`` and ``created_by = 'aebench'``;
* ``runs``    — one row per (suite, config hash): config JSON, status, error, environment
  (git commit, versions, device, threads, host, pid), start/end time, artifacts folder;
* ``metrics`` — tidy (run_id, name, value, phase) rows; ``phase`` is ``final`` for the
  evaluation and ``epoch-k`` (or ``step-k``) for the training history.

Guarantees (issue 7):

* **Never damage a file we did not make.** Before any write, :meth:`Store.open` checks the file
  header (SQLite magic and aebench's ``application_id``) by plain reads, then opens it read-only
  to check the schema and its integrity. A foreign database, a text file, a truncated or corrupt
  file, or a store from a newer aebench is refused with a one-line
  :class:`~bench.errors.UsageError` and left byte-identical.
* **All of a run's rows in one transaction** (:meth:`Store.finish`): a crash leaves either the
  complete result or none of it.
* **One writer.** :meth:`Store.lock` takes an exclusive ``flock`` on ``<db>.lock``; a second
  ``aebench run`` on the same store is refused with a message naming the holder. Readers
  (``aebench runs``/``export``) need no lock (WAL mode lets them read while a suite writes).
* **Resume.** A run still marked ``running`` when the lock is next taken belonged to a process
  that died; :meth:`Store.recover_stale` marks it ``interrupted``, and since only ``done`` runs
  count as done, the runner simply runs it again (reusing its row, so nothing is duplicated).

Typical runner use::

    store = Store.open(path)
    with store.lock():
        store.recover_stale()
        done = store.done_hashes()
        env = environment(device)
        for cfg in suite.expand():
            if cfg.config_hash in done:
                continue
            run_id = store.mark_running(cfg, env)
            ...
            store.finish(run_id, "done", scores, history)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import math
import os
import platform
import socket
import sqlite3
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from bench.suite import RunConfig

DEFAULT_STORE = Path("runs") / "aebench.sqlite"
STORE_ENV = "AEBENCH_STORE"
SCHEMA_VERSION = 1
#: Written into the SQLite header (offset 68) so a foreign database is recognised without
#: opening it through SQLite at all. ASCII "AEB1".
APPLICATION_ID = 0x41454231
STATUSES: tuple[str, ...] = ("pending", "running", "done", "failed", "diverged", "interrupted")
FINAL_STATUSES: tuple[str, ...] = ("done", "failed", "diverged", "interrupted")

_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    config_hash     TEXT NOT NULL,
    run_name        TEXT NOT NULL,
    suite           TEXT NOT NULL,
    config          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    error           TEXT,
    git_commit      TEXT,
    aebench_version TEXT,
    torch_version   TEXT,
    python_version  TEXT,
    device          TEXT,
    threads         INTEGER,
    host            TEXT,
    pid             INTEGER,
    started_at      TEXT,
    ended_at        TEXT,
    artifacts       TEXT,
    UNIQUE (suite, config_hash)
);
CREATE INDEX IF NOT EXISTS runs_by_hash ON runs (config_hash);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    value  REAL,
    phase  TEXT NOT NULL DEFAULT 'final',
    PRIMARY KEY (run_id, phase, name)
);
"""
_REQUIRED_COLUMNS = {
    "meta": {"key", "value"},
    "runs": {"id", "config_hash", "run_name", "suite", "config", "status", "error"},
    "metrics": {"run_id", "name", "value", "phase"},
}
_ENV_COLUMNS = (
    "git_commit",
    "aebench_version",
    "torch_version",
    "python_version",
    "device",
    "threads",
    "host",
    "pid",
)

#: Schema migrations: ``MIGRATIONS[v]`` upgrades a store from version ``v`` to ``v + 1``. Each
#: runs inside the transaction that also bumps ``schema_version``, so a failed migration leaves
#: the store at its old version. (Empty while the schema is at version 1.)
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}


def default_store_path() -> Path:
    """``$AEBENCH_STORE`` if set, else ``runs/aebench.sqlite`` (relative to the cwd)."""
    env = os.environ.get(STORE_ENV)
    return Path(env) if env else DEFAULT_STORE


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _ro_uri(path: Path) -> str:
    # as_uri() percent-encodes '?', '#', '%' and spaces, which would otherwise break the URI.
    return path.absolute().as_uri() + "?mode=ro"


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------
def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The checked-out commit of the aebench source tree (or ``cwd``), or None outside git."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def environment(device: str | None = None) -> dict[str, Any]:
    """What a run's numbers depend on besides its config, recorded beside every run.

    Keys: ``git_commit`` (None outside git), ``aebench_version``, ``torch_version``,
    ``python_version``, ``device`` (as given, else ``cuda`` if available else ``cpu``),
    ``threads`` (torch intra-op threads), ``host``, ``pid``.
    """
    from bench import __version__

    try:
        import torch

        torch_version: str | None = str(torch.__version__)
        threads: int | None = int(torch.get_num_threads())
        if device is None or device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a hard dependency
        torch_version, threads = None, None
        device = device or "cpu"
    return {
        "git_commit": git_commit(),
        "aebench_version": __version__,
        "torch_version": torch_version,
        "python_version": platform.python_version(),
        "device": device,
        "threads": threads,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


# --------------------------------------------------------------------------------------------
# Checking a file before touching it
# --------------------------------------------------------------------------------------------
def _check_header(path: Path) -> None:
    """Refuse anything that is not an SQLite file made by aebench, by reading bytes only."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
            size = os.fstat(fh.fileno()).st_size
    except IsADirectoryError:
        raise UsageError(f"store {path} is a directory, not an aebench store") from None
    except OSError as err:
        raise UsageError(f"cannot read store {path}: {err.strerror or err}") from None
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        what = "empty" if size == 0 else "not an SQLite database (or truncated)"
        raise UsageError(f"{path} is {what}, not an aebench store; refusing to touch it")
    app_id = int.from_bytes(header[68:72], "big")
    if app_id != APPLICATION_ID:
        raise UsageError(
            f"{path} is an SQLite database but not an aebench store "
            f"(application_id {app_id:#x}); refusing to touch it"
        )
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    n_pages = int.from_bytes(header[28:32], "big")
    change = header[24:28]
    valid_for = header[92:96]
    if change == valid_for and n_pages and size < n_pages * page_size:
        raise UsageError(
            f"store {path} is truncated ({size} bytes, its header says {n_pages * page_size}); "
            "refusing to touch it"
        )


def _inspect(conn: sqlite3.Connection, path: Path) -> int:
    """Schema checks on a read-only connection; returns the store's schema version."""
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            detail = " ".join(str(problems[0]).split())[:120]
            raise UsageError(f"store {path} is corrupt ({detail}); refusing to touch it")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, needed in _REQUIRED_COLUMNS.items():
            if table not in tables:
                raise UsageError(f"store {path} has no {table!r} table: not an aebench store")
            cols = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if not needed <= cols:
                missing = ", ".join(sorted(needed - cols))
                raise UsageError(f"store {path}: table {table!r} lacks columns {missing}")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError as err:
        if Path(f"{path}-wal").exists():
            raise _unusable_wal(path, err) from None
        raise UsageError(f"store {path} is unreadable ({err}); refusing to touch it") from None
    except sqlite3.DatabaseError as err:
        raise UsageError(
            f"store {path} is corrupt or unreadable ({err}); refusing to touch it"
        ) from None
    if meta.get("created_by") != "aebench":
        raise UsageError(f"{path} was not created by aebench (meta.created_by missing)")
    try:
        version = int(meta["schema_version"])
    except (KeyError, ValueError):
        raise UsageError(f"store {path} has no valid schema_version") from None
    if version > SCHEMA_VERSION:
        raise UsageError(
            f"store {path} was written by a newer aebench (schema {version}; this version reads "
            f"up to {SCHEMA_VERSION}): upgrade aebench"
        )
    if version < 1:
        raise UsageError(f"store {path} has an invalid schema_version {version}")
    return version


def _probe_uri(path: Path) -> str:
    """A URI for inspecting ``path`` that cannot create or change any file.

    Without a ``-wal`` file no connection has the database open and all its content is in the
    main file, so ``immutable=1`` reads it exactly and creates no ``-wal``/``-shm`` files beside
    it (a plain read-only open of a WAL database would). With a ``-wal`` present a writer may
    be active, so read through it with ``mode=ro``.
    """
    if Path(f"{path}-wal").exists():
        return _ro_uri(path)
    return path.absolute().as_uri() + "?immutable=1"


def _connect(path: Path, readonly: bool, uri: str | None = None) -> sqlite3.Connection:
    target = uri or (_ro_uri(path) if readonly else str(path))
    use_uri = uri is not None or readonly
    conn = sqlite3.connect(target, uri=use_uri, timeout=30.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def refuse_output_onto_store(
    store: str | os.PathLike[str] | None, out: str | os.PathLike[str], option: str
) -> None:
    """A one-line :class:`UsageError` if writing ``out`` would replace the store at ``store``
    (default path if None) or a file SQLite or the lock keeps beside it: the same path, a
    symlink or a hard link to it."""
    path = Path(store) if store is not None else default_store_path()
    out = Path(out)
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        own = path.with_name(path.name + suffix)
        same = out.resolve() == own.resolve()
        if not same and out.exists() and own.exists():
            same = os.path.samefile(out, own)
        if same:
            raise UsageError(
                f"{option} {out} is the results store's file {own.name}; refusing to overwrite it"
            )


def _unusable_wal(path: Path, err: Exception) -> UsageError:
    return UsageError(
        f"cannot read store {path} ({err}): it has a -wal file SQLite cannot use here "
        "(read-only media without its -shm?); copy the store with its -wal and -shm files "
        "somewhere writable"
    )


def _connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection that also works on read-only media.

    ``mode=ro`` on a WAL store still needs to create the ``-shm`` file, which a read-only file
    system (a mounted archive, a CD, a ``ro`` bind mount) refuses. Without a ``-wal`` file the
    main file holds everything, so ``immutable=1`` then reads it exactly; with one, reading the
    main file alone would silently miss committed rows, so that is refused in one line.
    """
    try:
        conn = _connect(path, readonly=True)
        conn.execute("SELECT COUNT(*) FROM meta").fetchone()
        return conn
    except sqlite3.OperationalError as err:
        if Path(f"{path}-wal").exists():
            raise _unusable_wal(path, err) from None
    try:
        return _connect(path, readonly=True, uri=path.absolute().as_uri() + "?immutable=1")
    except sqlite3.Error as err:
        raise UsageError(f"cannot read store {path}: {err}") from None


def _create(path: Path) -> None:
    """Build a fresh store beside ``path`` and link it into place atomically.

    Building in a temporary file means no other process ever sees a half-made store, and
    ``os.link`` fails instead of overwriting if someone else created ``path`` meanwhile.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(
            f"cannot create store folder {path.parent}: {err.strerror or err}"
        ) from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            leftover.unlink(missing_ok=True)
        conn = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("BEGIN")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("created_by", "aebench"),
                    ("created_at", _now()),
                ],
            )
            conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()  # last connection: checkpoints and removes -wal/-shm
        # If another process created it first, theirs is as good as ours.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    except sqlite3.Error as err:
        raise UsageError(f"cannot create store {path}: {err}") from None
    except OSError as err:
        raise UsageError(f"cannot create store {path}: {err.strerror or err}") from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            with contextlib.suppress(OSError):
                leftover.unlink()


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------
class Store:
    """A handle on one results store. Create it with :meth:`Store.open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        self._conn = conn
        self._lock_fh: Any = None

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        create: bool = True,
        readonly: bool = False,
    ) -> Store:
        """Open (or create, if ``create`` and absent) the store at ``path``.

        ``path`` defaults to :func:`default_store_path`. ``readonly`` opens with SQLite's
        ``mode=ro`` (for listing and export). Anything that is not a healthy aebench store raises
        :class:`UsageError` before a single byte of it is written.
        """
        path = Path(path) if path is not None else default_store_path()
        if not path.exists():
            if not create or readonly:
                raise UsageError(f"no results store at {path} (run a suite first, or pass --store)")
            _create(path)
        _check_header(path)
        try:
            probe = _connect(path, readonly=True, uri=_probe_uri(path))
        except sqlite3.Error as err:
            raise UsageError(f"cannot open store {path}: {err}") from None
        try:
            version = _inspect(probe, path)
        finally:
            probe.close()
        if readonly:
            if version < SCHEMA_VERSION:
                raise UsageError(
                    f"store {path} has schema {version}; open it once for writing (e.g. "
                    "`aebench run`) to upgrade it"
                )
            return cls(path, _connect_reader(path), readonly=True)
        try:
            conn = _connect(path, readonly=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as err:
            raise UsageError(f"cannot open store {path} for writing: {err}") from None
        store = cls(path, conn, readonly=False)
        if version < SCHEMA_VERSION:
            with store.lock():
                store._migrate(version)
        return store

    def close(self) -> None:
        """Release the lock (if held) and the connection."""
        self._release()
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}{', readonly' if self.readonly else ''})"

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @property
    def schema_version(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    # -- the writer lock ---------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[Store]:
        """Hold the store's single-writer lock for the ``with`` block.

        Non-blocking: if another process holds it, raise :class:`UsageError` saying which
        (pid, host, since when) — waiting silently would look like a hang.
        """
        if self.readonly:
            raise UsageError(f"store {self.path} is open read-only")
        if self._lock_fh is not None:
            raise RuntimeError("Store.lock() is not reentrant")
        try:
            fh = open(self.lock_path, "a+")  # noqa: SIM115 - held for the with block
        except OSError as err:
            raise UsageError(f"cannot create lock file {self.lock_path}: {err.strerror}") from None
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise UsageError(
                f"store {self.path} is in use by {holder}; wait for it to finish, or pass "
                "--store to use another file"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {_now()}")
        fh.flush()
        self._lock_fh = fh
        try:
            yield self
        finally:
            self._release()

    def _release(self) -> None:
        fh, self._lock_fh = self._lock_fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()
                fh.flush()
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()

    @property
    def locked(self) -> bool:
        return self._lock_fh is not None

    def _require_writer(self) -> None:
        if self.readonly:
            raise UsageError(f"store {self.path} is open read-only")
        if self._lock_fh is None:
            raise RuntimeError("write to the store inside `with store.lock():`")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception (then re-raise).

        A write SQLite refuses (disk full, read-only file) becomes a one-line UsageError; the
        rollback keeps every earlier committed row as it was.
        """
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # SQLite may already have rolled back (SQLITE_FULL)
                    self._conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as err:
            raise UsageError(f"store {self.path}: cannot write: {err}") from None

    def _migrate(self, version: int) -> None:
        while version < SCHEMA_VERSION:
            step = MIGRATIONS.get(version)
            if step is None:
                raise UsageError(
                    f"store {self.path}: no migration from schema {version} to {version + 1}"
                )
            with self._transaction() as conn:
                step(conn)
                version += 1
                conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),)
                )
                conn.execute(f"PRAGMA user_version = {version}")

    # -- writing -----------------------------------------------------------------------------
    def recover_stale(self) -> int:
        """Mark ``running`` rows as ``interrupted``; returns how many.

        Only call while holding :meth:`lock`: then no other writer is alive, so any ``running``
        row is from a process that was killed. Interrupted runs are not done and get re-run.
        """
        self._require_writer()
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = 'interrupted', ended_at = ?, "
                "error = 'the process (pid ' || COALESCE(pid, '?') || ' on ' || "
                "COALESCE(host, '?') || ') ended without finishing this run' "
                "WHERE status = 'running'",
                (_now(),),
            )
            return cur.rowcount

    def add_pending(self, configs: Iterable[RunConfig]) -> int:
        """Record not-yet-started runs as ``pending`` (so ``aebench runs`` shows the plan).

        Configs that already have a row in their suite are left alone. Returns rows added.
        """
        self._require_writer()
        with self._transaction() as conn:
            added = 0
            for cfg in configs:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO runs (config_hash, run_name, suite, config, status) "
                    "VALUES (?, ?, ?, ?, 'pending')",
                    (cfg.config_hash, cfg.run_name, cfg.suite, cfg.to_json()),
                )
                added += cur.rowcount
            return added

    def artifacts_dir(self, cfg: RunConfig) -> Path:
        """Where a run's files (model, images, history) go: beside the store, one per run."""
        return self.path.parent / "artifacts" / cfg.suite / f"{cfg.run_name}-{cfg.short_hash}"

    def mark_running(
        self,
        cfg: RunConfig,
        env: Mapping[str, Any] | None = None,
        artifacts: str | os.PathLike[str] | None = None,
    ) -> int:
        """Record that ``cfg`` starts now; returns its run id.

        Reuses the row of an earlier unfinished attempt (pending/failed/diverged/interrupted) of
        the same config in the same suite, deleting that attempt's metrics, so re-running never
        duplicates a run. ``env`` is :func:`environment`'s dict. Refuses to restart a run that
        is already ``done`` (skip those via :meth:`done_hashes`).
        """
        self._require_writer()
        env = dict(env or {})
        values = {k: env.get(k) for k in _ENV_COLUMNS}
        artifacts_dir = str(artifacts if artifacts is not None else self.artifacts_dir(cfg))
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT id, status FROM runs WHERE suite = ? AND config_hash = ?",
                (cfg.suite, cfg.config_hash),
            ).fetchone()
            if row is not None and row["status"] == "done":
                raise ValueError(f"run {cfg.run_name} ({cfg.short_hash}) is already done")
            cols = ", ".join(f"{k} = :{k}" for k in _ENV_COLUMNS)
            params = {
                **values,
                "config_hash": cfg.config_hash,
                "run_name": cfg.run_name,
                "suite": cfg.suite,
                "config": cfg.to_json(),
                "started_at": _now(),
                "artifacts": artifacts_dir,
            }
            if row is not None:
                conn.execute("DELETE FROM metrics WHERE run_id = ?", (row["id"],))
                conn.execute(
                    f"UPDATE runs SET status = 'running', error = NULL, ended_at = NULL, "
                    f"run_name = :run_name, config = :config, started_at = :started_at, "
                    f"artifacts = :artifacts, {cols} WHERE id = :id",
                    {**params, "id": row["id"]},
                )
                return int(row["id"])
            names = ["config_hash", "run_name", "suite", "config", "started_at", "artifacts"]
            names += list(_ENV_COLUMNS)
            cur = conn.execute(
                f"INSERT INTO runs (status, {', '.join(names)}) "
                f"VALUES ('running', {', '.join(':' + n for n in names)})",
                params,
            )
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def finish(
        self,
        run_id: int,
        status: str,
        metrics: Mapping[str, float] | None = None,
        history: Sequence[Mapping[str, Any]] | None = None,
        error: str | None = None,
        environment: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a run's outcome and every number it produced, in ONE transaction.

        ``environment`` (optional) is the record of the process that actually ran it (a worker
        may run with fewer threads, another pid or host than the driver that marked it
        running); its known fields replace the ones stored by :meth:`mark_running`.

        ``metrics`` go in with phase ``final``. Each ``history`` entry is one epoch's (or
        step's) dict of numbers; its phase is the entry's ``phase`` value, else ``epoch-<epoch>``,
        else ``step-<step>``, else ``entry-<index>`` (the key that names the phase is not stored
        as a metric); its non-numeric values are skipped. NaN is
        stored as NULL and read back as NaN. If anything fails midway nothing is written.
        """
        self._require_writer()
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, got {status!r}")
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, error = ?, ended_at = ? WHERE id = ?",
                (status, error, _now(), run_id),
            )
            if cur.rowcount != 1:
                raise ValueError(f"no run with id {run_id}")
            known = {k: v for k, v in (environment or {}).items() if k in _ENV_COLUMNS}
            if known:
                cols = ", ".join(f"{k} = :{k}" for k in known)
                conn.execute(f"UPDATE runs SET {cols} WHERE id = :id", {**known, "id": run_id})
            conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            conn.executemany(
                "INSERT OR REPLACE INTO metrics (run_id, name, value, phase) VALUES (?, ?, ?, ?)",
                _metric_rows(run_id, metrics or {}, history or ()),
            )

    # -- reading -----------------------------------------------------------------------------
    def done_hashes(self, suite: str | None = None) -> set[str]:
        """Config hashes of runs finished ``done`` (in ``suite``, or in any suite)."""
        sql = "SELECT DISTINCT config_hash FROM runs WHERE status = 'done'"
        args: tuple[Any, ...] = ()
        if suite is not None:
            sql += " AND suite = ?"
            args = (suite,)
        return {r[0] for r in self._conn.execute(sql, args)}

    def runs(
        self, suite: str | None = None, status: str | Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """Run rows as dicts (``config`` parsed from JSON), oldest first."""
        where, args = _where(suite, status)
        rows = self._conn.execute(f"SELECT * FROM runs{where} ORDER BY id", args).fetchall()
        out = []
        for row in rows:
            d = dict(row)
            with contextlib.suppress(TypeError, ValueError):
                d["config"] = json.loads(d["config"])
            out.append(d)
        return out

    def metrics(self, run_id: int, phase: str | None = "final") -> dict[str, float]:
        """One run's metrics as ``{name: value}`` (``phase=None``: every phase, keys
        ``phase/name``)."""
        if phase is None:
            rows = self._conn.execute(
                f"SELECT phase || '/' || name, {_NUMERIC} FROM metrics WHERE run_id = ?",
                (run_id,),
            )
        else:
            rows = self._conn.execute(
                f"SELECT name, {_NUMERIC} FROM metrics WHERE run_id = ? AND phase = ?",
                (run_id, phase),
            )
        return {k: (math.nan if v is None else float(v)) for k, v in rows}

    def count_non_numeric(self) -> int:
        """Metric rows whose value is neither a number nor NULL (text or a blob written by
        something other than aebench): every reader takes them as missing values."""
        sql = f"SELECT COUNT(*) FROM metrics WHERE value IS NOT NULL AND {_NUMERIC} IS NULL"
        return int(self._conn.execute(sql).fetchone()[0])

    def count(self, table: str = "runs") -> int:
        """Row count of ``runs`` or ``metrics`` (handy for tests and summaries)."""
        if table not in ("runs", "metrics"):
            raise ValueError(table)
        return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def metrics_frame(
        self,
        suite: str | None = None,
        status: str | Iterable[str] | None = None,
        phase: str | None = None,
    ) -> pd.DataFrame:
        """The metrics as a tidy DataFrame: one row per (run, phase, metric).

        Columns: run_id, suite, run_name, config_hash, model, label, dataset, arch, seed,
        status, phase, metric, value, git_commit, device, started_at, ended_at. Needs pandas
        (imported here, so the rest of the store works without it).
        """
        try:
            import pandas as pd
        except ImportError:
            raise UsageError(
                "this needs pandas: pip install pandas (or pip install 'aebench[report]')"
            ) from None
        where, args = _where(suite, status, prefix="r.")
        if phase is not None:
            where += (" AND " if where else " WHERE ") + "m.phase = ?"
            args = (*args, phase)
        rows = self._conn.execute(
            "SELECT r.id AS run_id, r.suite, r.run_name, r.config_hash, r.config, r.status, "
            f"m.phase, m.name AS metric, {_NUMERIC.replace('value', 'm.value')} AS value, "
            "r.git_commit, r.device, r.started_at, "
            f"r.ended_at FROM metrics m JOIN runs r ON r.id = m.run_id{where} "
            "ORDER BY r.id, m.phase, m.name",
            args,
        ).fetchall()
        records = []
        for row in rows:
            d = dict(row)
            try:
                cfg = json.loads(d.pop("config"))
            except (TypeError, ValueError):
                cfg = {}
            if not isinstance(cfg, dict):
                cfg = {}
            for key in ("model", "label", "dataset", "arch", "seed"):
                d[key] = cfg.get(key)
            records.append(d)
        columns = [
            "run_id", "suite", "run_name", "config_hash", "model", "label", "dataset", "arch",
            "seed", "status", "phase", "metric", "value", "git_commit", "device", "started_at",
            "ended_at",
        ]  # fmt: skip
        frame = pd.DataFrame.from_records(records, columns=columns)
        frame["value"] = frame["value"].astype(float)
        return frame


def non_numeric_note(count: int) -> str:
    """The one-line warning for :meth:`Store.count_non_numeric` rows."""
    return (
        f"{count} metric value(s) in the store are not numbers (written by another program?); "
        "they are read as missing"
    )


#: a metric value as stored, or NULL where it is not a number (see count_non_numeric)
_NUMERIC = "CASE WHEN typeof(value) IN ('integer', 'real') THEN value END"


def _where(
    suite: str | None, status: str | Iterable[str] | None, prefix: str = ""
) -> tuple[str, tuple[Any, ...]]:
    clauses, args = [], []
    if suite is not None:
        clauses.append(f"{prefix}suite = ?")
        args.append(suite)
    if status is not None:
        wanted = [status] if isinstance(status, str) else list(status)
        bad = [s for s in wanted if s not in STATUSES]
        if bad:
            raise UsageError(f"unknown status {bad[0]!r}; choose from: {', '.join(STATUSES)}")
        clauses.append(f"{prefix}status IN ({', '.join('?' for _ in wanted)})")
        args.extend(wanted)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _number(value: Any) -> float:
    """A metric value as float; numpy/torch scalars via ``.item()``. Raises if not a number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return float(value.item())
    return float(value)


def _metric_rows(
    run_id: int, metrics: Mapping[str, Any], history: Sequence[Mapping[str, Any]]
) -> Iterator[tuple[int, str, float | None, str]]:
    for name, value in metrics.items():
        yield run_id, str(name), _nan_to_none(_number(value)), "final"
    for i, entry in enumerate(history):
        if "phase" in entry:
            phase, naming = str(entry["phase"]), "phase"
        elif "epoch" in entry:
            phase, naming = f"epoch-{entry['epoch']}", "epoch"
        elif "step" in entry:
            phase, naming = f"step-{entry['step']}", "step"
        else:
            phase, naming = f"entry-{i}", ""
        for name, value in entry.items():
            if name == naming or isinstance(value, str | bytes | type(None) | dict | list):
                continue
            yield run_id, str(name), _nan_to_none(_number(value)), phase


def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


__all__ = [
    "DEFAULT_STORE",
    "FINAL_STATUSES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STATUSES",
    "Store",
    "default_store_path",
    "environment",
    "git_commit",
    "refuse_output_onto_store",
]
