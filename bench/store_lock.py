"""The results store's single-writer lock (a mixin of :class:`bench.store.Store`).

One writer at a time: :meth:`WriterLock.lock` takes an exclusive, non-blocking ``flock`` on
``<db>.lock`` and writes who holds it, so a second ``aebench run`` on the same store is refused
with a message naming the holder instead of waiting silently. Readers need no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.errors import UsageError
from bench.store_schema import _now


class WriterLock:
    """The lock half of :class:`bench.store.Store` (needs ``path``, ``readonly``, ``_lock_fh``)."""

    path: Path
    readonly: bool
    _lock_fh: Any

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

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
