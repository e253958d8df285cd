"""The results store's single-writer lock (a mixin of :class:`aebench.store.database.Store`).

One writer at a time, whatever name the store is reached by. :meth:`WriterLock.lock` takes two
exclusive, non-blocking ``flock`` locks:

* on ``<db>.lock`` beside the *resolved* file (symlinks followed), where the holder writes who
  it is, so a second ``aebench run`` through the same name or a symlink is refused with a
  message naming the holder instead of waiting silently;
* on the database file itself, which every name of it shares, hard links included (a hard link
  has its own ``.lock`` name, so only the file's own lock sees it).

On a local file system ``flock`` locks are independent of the POSIX byte-range (``fcntl``)
locks SQLite takes, so readers are not held up. On NFS, Linux emulates ``flock`` with
whole-file ``fcntl`` locks: there the writer's lock does conflict with SQLite's, and readers in
other processes get "database is locked" while a writer holds it (SQLite's WAL mode, which the
store uses, is not meant for network file systems in any case).

**Descriptors of the database file.** Closing *any* descriptor of a file drops every POSIX lock
the process holds on that file, SQLite's own included (SQLite's "How To Corrupt An SQLite
Database File", section 2.2): a connection whose locks silently vanished lets another process
checkpoint and delete the write-ahead log under it. So the descriptor the lock opens on the database
file is never closed while a connection may depend on it: releasing the lock only unlocks it, the
store keeps it until :meth:`aebench.store.database.Store.close` has closed its connection, and
:func:`retire` then closes it only once no other descriptor of this process refers to the file
(another store, a plain ``sqlite3`` connection); until then it is kept, and a later :func:`retire`
closes it. Where ``/proc/self/fd`` cannot be read (not Linux) it is closed at once: the store's own
connection is closed by then, other connections of the process to the same file are not seen.

Readers need no lock. :func:`refuse_if_held` asks whether a writer holds it, before a writer
opens a single SQLite connection.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from aebench.core.errors import UsageError
from aebench.store.schema import default_store_path, now_utc

#: what a refused writer is told to do
_ADVICE = "wait for it to finish, or pass --store to use another file"
#: how often :meth:`WriterLock.lock` retries past a :func:`refuse_if_held` probe's momentary
#: shared lock, a millisecond apart (a probe holds it for microseconds)
_PROBE_RETRIES = 200

#: unlocked descriptors of database files waiting to be closed (see the module docstring)
_RETIRED: list[IO[Any]] = []


def lock_file_path(path: str | os.PathLike[str]) -> Path:
    """The holder file of the store at ``path``: ``<db>.lock`` beside the resolved file, so a
    symlink and the name it points to share one."""
    real = Path(os.path.realpath(path))
    return real.with_name(real.name + ".lock")


def _try_flock(fh: IO[Any], shared: bool = False) -> bool:
    """Take an exclusive (or ``shared``) ``flock`` on ``fh`` without waiting: True if taken,
    False if another open file holds a conflicting one. A file system without ``flock`` counts
    as taken (nothing to learn)."""
    try:
        fcntl.flock(fh.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def _unlock(fh: IO[Any] | None) -> None:
    if fh is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _file_key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _descriptor_counts() -> collections.Counter[tuple[int, int]] | None:
    """How many descriptors of this process refer to each file (device, inode); None where
    ``/proc/self/fd`` cannot be read."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    counts: collections.Counter[tuple[int, int]] = collections.Counter()
    for name in names:
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            counts[_file_key(os.stat(f"/proc/self/fd/{name}"))] += 1
    return counts


def retire(fh: IO[Any] | None) -> None:
    """Unlock ``fh`` (a descriptor of a database file, opened here) and close it as soon as that
    cannot drop a POSIX lock of this process: now, if no other descriptor of the process refers
    to its file, else at a later call that finds the file free. Each call also closes the
    descriptors retired earlier whose files have become free."""
    if fh is not None:
        _unlock(fh)
        _RETIRED.append(fh)
    if not _RETIRED:
        return
    counts = _descriptor_counts()
    keys = [_file_key(os.fstat(f.fileno())) for f in _RETIRED]
    ours = collections.Counter(keys)
    kept = []
    for f, key in zip(_RETIRED, keys, strict=True):
        if counts is None or counts[key] <= ours[key]:
            f.close()
        else:
            kept.append(f)
    _RETIRED[:] = kept


def _flock_pid(fh: IO[Any]) -> str | None:
    """The pid holding a write ``flock`` on ``fh``'s file, from ``/proc/locks`` (Linux); None
    where that cannot be told."""
    st = os.fstat(fh.fileno())
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if fields[1:2] == ["FLOCK"] and fields[3:4] == ["WRITE"] and fields[5:6] == [device]:
            return fields[4]
    return None


def _in_use(path: Path, holder: str) -> UsageError:
    return UsageError(f"store {path} is in use by {holder}; {_ADVICE}")


def _holder(path: Path, database: IO[Any]) -> str:
    """Who holds the lock on the store at ``path`` (whose file ``database`` is open): what its
    holder file says if the holder came by this name or a symlink, else the pid ``flock``-ing
    the file (the holder came through a hard link, whose holder file is not ours to read).

    A writer refused in the instant between another's taking the lock and writing its line is
    told "pid N on HOST (through another name of the same file)": the pid is right, the aside
    is not. The race is benign (one of the two is refused either way) and left as is."""
    pid = _flock_pid(database)
    try:
        text = lock_file_path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    if text and (pid is None or text.startswith(f"pid {pid} ")):
        return text
    who = f"pid {pid} on {socket.gethostname()}" if pid is not None else "another process"
    return f"{who} (through another name of the same file)"


def _open_database(path: Path) -> IO[Any] | None:
    """The database file itself, opened read-only to ``flock``; None if it cannot be opened
    (then the writer fails later with SQLite's own message). Goes to :func:`retire`, never to
    ``close``."""
    try:
        return open(path, "rb")  # retired, not closed: see the module docstring
    except OSError:
        return None


def _take_database(path: Path, database: IO[Any] | None) -> None:
    """The exclusive ``flock`` on the database file, or the one-line refusal naming the holder
    if another open of the file, by any name, holds it. A shared lock in the way is a
    :func:`refuse_if_held` probe, held for an instant: waited out rather than refused."""
    if database is None:
        return
    for _ in range(_PROBE_RETRIES):
        if _try_flock(database):
            return
        if not _try_flock(database, shared=True):
            break  # an exclusive holder: a writer
        _unlock(database)
        time.sleep(0.001)
    raise _in_use(path, _holder(path, database))


def refuse_if_held(path: str | os.PathLike[str] | None) -> None:
    """A one-line :class:`UsageError` naming the holder if some writer holds the lock of the
    store at ``path`` (default path if None), by any of its names. Creates no file, so a writer
    refused here has not even opened the store; :meth:`WriterLock.lock` still decides.

    It only probes with a *shared* ``flock``, which only a writer's exclusive lock refuses: two
    writers starting together never refuse each other here, and :meth:`WriterLock.lock` waits
    out a probe's momentary shared lock, so a probe cannot refuse a legitimate writer.

    Call it before this process opens a connection to the store: it opens (and so must close) a
    descriptor of the database file. Should a connection be open anyway, :func:`retire` keeps
    that descriptor open until the file is free, so its POSIX locks are not dropped."""
    path = Path(path) if path is not None else default_store_path()
    if not path.is_file():
        return
    database = _open_database(path)
    if database is None:
        return
    try:
        if not _try_flock(database, shared=True):
            raise _in_use(path, _holder(path, database))
    finally:
        retire(database)


class _Held:
    """A held lock: the holder file (closed on release) and the database file (only unlocked:
    the store retires it after closing its connection)."""

    def __init__(self, holder_file: IO[Any], database: IO[Any] | None) -> None:
        self.holder_file = holder_file
        self.database = database

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.holder_file.seek(0)
            self.holder_file.truncate()
            self.holder_file.flush()
        _unlock(self.holder_file)
        self.holder_file.close()  # the holder file, never the database: no SQLite lock on it
        _unlock(self.database)


class WriterLock:
    """The lock half of :class:`aebench.store.database.Store` (needs ``path``, ``readonly``,
    ``_lock_fh`` and ``_database_fh``, the database file's descriptor, opened by the first
    :meth:`lock`)."""

    path: Path
    readonly: bool
    _lock_fh: Any
    _database_fh: IO[Any] | None

    @property
    def lock_path(self) -> Path:
        return lock_file_path(self.path)

    # -- the writer lock ---------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[Any]:
        """Hold the store's single-writer lock for the ``with`` block.

        Non-blocking: if another process holds it, raise :class:`UsageError` saying which
        (pid, host, since when) — waiting silently would look like a hang.
        """
        if self.readonly:
            raise UsageError(f"store {self.path} is open read-only")
        if self._lock_fh is not None:
            raise RuntimeError("Store.lock() is not reentrant")
        if self._database_fh is None:  # kept until the store closes: see the module docstring
            self._database_fh = _open_database(self.path)
        database = self._database_fh
        _take_database(self.path, database)  # first: a refusal here creates no file
        try:
            fh = open(self.lock_path, "a+")  # noqa: SIM115 - held for the with block
        except OSError as err:
            _unlock(database)
            raise UsageError(f"cannot create lock file {self.lock_path}: {err.strerror}") from None
        if not _try_flock(fh):  # an aebench from before the database lock holds it
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            _unlock(database)
            raise _in_use(self.path, holder)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {now_utc()}")
        fh.flush()
        self._lock_fh = _Held(fh, database)
        try:
            yield self
        finally:
            self._release()

    def _release(self) -> None:
        held, self._lock_fh = self._lock_fh, None
        if held is not None:
            held.release()

    def _retire_database(self) -> None:
        """Hand the database file's descriptor to :func:`retire`; only once the store's own
        connection is closed."""
        database, self._database_fh = self._database_fh, None
        retire(database)

    @property
    def locked(self) -> bool:
        return self._lock_fh is not None
