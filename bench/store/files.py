"""A store file checked before anything touches it, and the connections that open it.

Every check reads bytes or uses a read-only SQLite connection, so a foreign, truncated or corrupt
file is refused (one :class:`~aebench.core.errors.UsageError` line) and left byte-identical."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

from aebench.core.errors import UsageError
from aebench.store.lock import retire
from aebench.store.schema import (
    _REQUIRED_COLUMNS,
    _SCHEMA,
    _SQLITE_MAGIC,
    APPLICATION_ID,
    SCHEMA_VERSION,
    _ro_uri,
    default_store_path,
    now_utc,
)

# --------------------------------------------------------------------------------------------
# Checking a file before touching it
# --------------------------------------------------------------------------------------------
#: how often, and how far apart, a store that looks truncated is read again before it is
#: refused: another process's WAL checkpoint may have written the header's new page count
#: before the pages that extend the file
TRUNCATION_READS, TRUNCATION_PAUSE_S = 5, 0.05


def _check_header(path: Path) -> None:
    """Refuse anything that is not an SQLite file made by aebench, by reading bytes only. A
    file shorter than its header says is read again a few times first: a concurrent writer's
    checkpoint grows it after updating the header, and only a file that stays short is
    truncated."""
    for attempt in range(TRUNCATION_READS):
        short = _check_header_once(path)
        if short is None:
            return
        if attempt < TRUNCATION_READS - 1:
            time.sleep(TRUNCATION_PAUSE_S)
    raise UsageError(short)


def _check_header_once(path: Path) -> str | None:
    """One reading of the header: raises for a file that is not an aebench store; returns why a
    store looks truncated, or None when it does not."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - retired, not closed: see below
    except IsADirectoryError:
        raise UsageError(f"store {path} is a directory, not an aebench store") from None
    except OSError as err:
        raise UsageError(f"cannot read store {path}: {err.strerror or err}") from None
    # closing a descriptor of a file drops every POSIX lock this process holds on it, SQLite's
    # included, so the descriptor is handed to retire(), which closes it once that is safe
    try:
        header = fh.read(100)
        size = os.fstat(fh.fileno()).st_size
    except OSError as err:
        raise UsageError(f"cannot read store {path}: {err.strerror or err}") from None
    finally:
        retire(fh)
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
        return (
            f"store {path} is truncated ({size} bytes, its header says {n_pages * page_size}); "
            "refusing to touch it"
        )
    return None


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
    symlink or a hard link to it; or a file in the store's run folders (``artifacts/`` beside
    it: weights, configs and metrics that re-evaluation and reports read)."""
    path = Path(store) if store is not None else default_store_path()
    out = Path(out)
    runs = (path.parent / "artifacts").resolve()
    if runs in out.resolve().parents:
        raise UsageError(
            f"{option} {out} is inside the results store's run folders ({runs}); refusing to "
            "write there, give a path outside them"
        )
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
                    ("created_at", now_utc()),
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
