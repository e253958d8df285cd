"""The results store: one embedded SQLite file (``runs/aebench.sqlite`` by default).

Why SQLite: a suite runs for hours and gets killed; results must survive that, stay queryable
across code versions, and need no server. Four tables:

* ``meta``    — ``schema_version`` and ``created_by = 'aebench'``;
* ``runs``    — one row per (suite, config hash): config JSON, status, error, environment
  (git commit, versions, device, threads, host, pid), start/end time, artifacts folder
  (relative to the store's folder: :mod:`aebench.store.artifacts`) and the sha256 of the
  weights the run wrote;
* ``metrics`` — tidy (run_id, name, value, phase) rows; ``phase`` is ``final`` for the
  evaluation and ``epoch-k`` (or ``step-k``) for the training history;
* ``evaluations`` — per run and metric family, the options its values were measured with and,
  for a re-evaluation, where (``environment`` JSON; NULL: with the run, as its row records).

Guarantees:

* **Never damage a file we did not make.** Before any write, :meth:`Store.open` checks the file
  header (SQLite magic and aebench's ``application_id``) by plain reads, then opens it read-only
  to check the schema and its integrity. A foreign database, a text file, a truncated or corrupt
  file, or a store from a newer aebench is refused with a one-line
  :class:`~aebench.core.errors.UsageError` and left byte-identical.
* **All of a run's rows in one transaction** (:meth:`Store.finish`): a crash leaves either the
  complete result or none of it.
* **One writer.** :meth:`Store.lock` (:mod:`aebench.store.lock`) refuses a second ``aebench run``
  on the same file, by any of its names, with a message naming the holder. Readers
  (``aebench runs``/``export``) need no lock (WAL mode lets them read while a suite writes).
* **Resume.** A run still marked ``running`` when the lock is next taken belonged to a process
  that died; :meth:`Store.recover_stale` marks it ``interrupted``, and since only ``done`` runs
  count as done, the runner simply runs it again (reusing its row, so nothing is duplicated).

Typical use is the runner's (:func:`aebench.experiments.runner.run_suite`): open, take the
lock, recover stale runs, then ``mark_running`` and ``finish`` each run not yet done.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aebench.core.errors import UsageError
from aebench.store.artifacts import stored_artifacts
from aebench.store.files import (
    _check_header,
    _connect,
    _connect_reader,
    _create,
    _inspect,
    _probe_uri,
    refuse_output_onto_store,
)
from aebench.store.lock import WriterLock
from aebench.store.queries import StoreQueries, non_numeric_note
from aebench.store.schema import (
    _ENV_COLUMNS,
    APPLICATION_ID,
    DEFAULT_STORE,
    FINAL_STATUSES,
    MIGRATIONS,
    SCHEMA_VERSION,
    STATUSES,
    default_store_path,
    environment,
    git_commit,
    now_utc,
)
from aebench.store.schema import metric_rows as _metric_rows

if TYPE_CHECKING:
    from aebench.experiments.suite import RunConfig


class Store(StoreQueries, WriterLock):
    """A handle on one results store. Create it with :meth:`Store.open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        self._conn = conn
        self._lock_fh: Any = None
        self._database_fh: Any = None  #: the database file's descriptor, for the writer lock

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
            try:
                with store.lock():
                    store._migrate(version)
            except BaseException:
                store.close()  # a refused upgrade leaves no connection (nor lock) behind
                raise
        return store

    def close(self) -> None:
        """Release the lock (if held) and the connection, then retire the database file's
        descriptor: never before, as closing it would drop the connection's SQLite locks."""
        self._release()
        self._conn.close()
        self._retire_database()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}{', readonly' if self.readonly else ''})"

    @property
    def schema_version(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

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
                (now_utc(),),
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
        folder = artifacts if artifacts is not None else self.artifacts_dir(cfg)
        artifacts_dir = stored_artifacts(folder, self.path)  # relative to the store's folder
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
                "started_at": now_utc(),
                "artifacts": artifacts_dir,
            }
            if row is not None:
                conn.execute("DELETE FROM metrics WHERE run_id = ?", (row["id"],))
                conn.execute(
                    f"UPDATE runs SET status = 'running', error = NULL, ended_at = NULL, "
                    f"run_name = :run_name, config = :config, started_at = :started_at, "
                    f"artifacts = :artifacts, weights_sha256 = NULL, {cols} WHERE id = :id",
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
        evaluations: Mapping[str, str] | None = None,
        weights_sha256: str | None = None,
    ) -> None:
        """Record a run's outcome and every number it produced, in ONE transaction.

        ``weights_sha256`` is the checksum of the weights file the run wrote
        (:func:`aebench.store.artifacts.weights_sha256`): what tells its folder's weights from
        any other file later found there.

        ``evaluations`` maps each metric family that was computed to its options key
        (:meth:`~aebench.metrics.family.MetricFamily.options_key`): the evaluation's identity.

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
                (status, error, now_utc(), run_id),
            )
            if cur.rowcount != 1:
                raise ValueError(f"no run with id {run_id}")
            env = environment or {}  # a None (a Ray worker has no git checkout) keeps the start's
            known = {k: v for k, v in env.items() if k in _ENV_COLUMNS and v is not None}
            if weights_sha256 is not None:
                known["weights_sha256"] = weights_sha256
            if known:
                cols = ", ".join(f"{k} = :{k}" for k in known)
                conn.execute(f"UPDATE runs SET {cols} WHERE id = :id", {**known, "id": run_id})
            conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            conn.executemany(
                "INSERT OR REPLACE INTO metrics (run_id, name, value, phase) VALUES (?, ?, ?, ?)",
                _metric_rows(run_id, metrics or {}, history or ()),
            )
            conn.execute("DELETE FROM evaluations WHERE run_id = ?", (run_id,))
            conn.executemany(
                "INSERT INTO evaluations (run_id, family, options) VALUES (?, ?, ?)",
                [(run_id, f, o) for f, o in (evaluations or {}).items()],
            )

    def record_evaluation(
        self,
        run_id: int,
        metrics: Mapping[str, float],
        evaluations: Mapping[str, tuple[Sequence[str], str]],
        config: str | None = None,
        environment: str | None = None,
    ) -> None:
        """Replace what some metric families measured for a finished run, in ONE transaction
        (``aebench eval --store``): for each family in ``evaluations`` (its keys, its options
        key) its earlier final rows go and ``metrics`` of those keys come in. Rows of other
        families and the training history are never touched. ``config`` (JSON) replaces the
        run's stored config, when the evaluation used a suite's new ``[metrics]``;
        ``environment`` (JSON) is where this evaluation ran, kept per family."""
        self._require_writer()
        with self._transaction() as conn:
            if config is not None:
                conn.execute("UPDATE runs SET config = ? WHERE id = ?", (config, run_id))
            for family, (keys, options) in evaluations.items():
                conn.executemany(
                    "DELETE FROM metrics WHERE run_id = ? AND phase = 'final' AND name = ?",
                    [(run_id, k) for k in keys],
                )
                conn.execute(
                    "INSERT OR REPLACE INTO evaluations (run_id, family, options, environment) "
                    "VALUES (?, ?, ?, ?)",
                    (run_id, family, options, environment),
                )
            wanted = {k for keys, _ in evaluations.values() for k in keys}
            conn.executemany(
                "INSERT INTO metrics (run_id, name, value, phase) VALUES (?, ?, ?, ?)",
                _metric_rows(run_id, {k: v for k, v in metrics.items() if k in wanted}, ()),
            )


__all__ = [
    "APPLICATION_ID",
    "DEFAULT_STORE",
    "FINAL_STATUSES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STATUSES",
    "Store",
    "default_store_path",
    "environment",
    "git_commit",
    "non_numeric_note",
    "refuse_output_onto_store",
]
