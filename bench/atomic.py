"""Atomic file writes: the one way aebench puts a file on disk that must never be half-written.

A benchmark runs for hours; a full disk or a kill in the middle of a write must leave either the
old file or the new one, never a torn mix. So every write goes to a temp file in the target's
folder, is flushed and fsynced, renamed over the target, and the folder is fsynced. A write that
fails for a reason outside the program (disk full, no permission, read-only file system) removes
its temp file, leaves any earlier file untouched and raises a one-line
:class:`~bench.errors.UsageError` naming the path and the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from bench.errors import UsageError


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: mkstemp makes files private (0600); a finished file gets the mode open() would have given it
FILE_MODE = 0o666 & ~_current_umask()


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Produce ``path`` by calling ``write(temp_path)``, then fsync and rename into place."""
    path = Path(path)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except (OSError, SafetensorError) as err:
        raise UsageError(f"cannot write {path}: {_reason(err)}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_json_atomic(path: str | os.PathLike[str], payload: Any, **dump: Any) -> None:
    """``json.dump`` (indented, sorted keys, trailing newline) through :func:`atomic_write`."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True, **dump)
            f.write("\n")

    atomic_write(path, write)
