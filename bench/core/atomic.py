"""Atomic file writes: the one way aebench puts a file on disk that must never be half-written.

A benchmark runs for hours; a full disk or a kill in the middle of a write must leave either the
old file or the new one, never a torn mix. So every write goes to a temp file in the target's
folder, is flushed and fsynced, renamed over the target, and the folder is fsynced. A write that
fails for a reason outside the program (disk full, no permission, read-only file system) removes
its temp file, leaves any earlier file untouched and raises a one-line
:class:`~aebench.core.errors.UsageError` naming the path and the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from aebench.core.errors import UsageError


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: mkstemp makes files private (0600); a finished file gets the mode open() would have given it
FILE_MODE = 0o666 & ~current_umask()


def reason(err: BaseException) -> str:
    """Why ``err`` happened, in one line: an OSError's ``strerror`` ("No space left on
    device"), else the first line of its text, else its type's name."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def fsync_dir(folder: Path) -> None:
    """fsync ``folder`` so a rename or a new entry in it survives a crash; a file system that
    cannot fsync a folder is left as it is."""
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
        fsync_dir(path.parent)
    except (OSError, SafetensorError) as err:
        raise UsageError(f"cannot write {path}: {reason(err)}") from None
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


#: the largest input file (suite, published values, gate baseline or results) aebench reads:
#: far above any real one, far below what would exhaust memory (``/dev/zero``)
MAX_INPUT_BYTES = 64 * 1024 * 1024


def read_input_file(path: str | os.PathLike[str], what: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a user-given input file, or a one-line :class:`UsageError`.

    Only a regular file is read (a FIFO would block forever, ``/dev/zero`` never ends), and
    only up to ``limit`` bytes: the size is checked from ``fstat`` on the opened file and the
    read itself is bounded, so a file that grows while being read cannot get past it either.
    ``what`` names the file in the message ("speed baseline", "published-values file").
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UsageError(f"{path}: {what} not found") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read {what} ({reason(err)})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UsageError(f"{path}: is a directory, not a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path}: {what} is not a regular file")
        if info.st_size > limit:
            raise UsageError(f"{path}: {what} is {info.st_size:,} bytes; the limit is {limit:,}")
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(limit + 1)
    except OSError as err:
        raise UsageError(f"{path}: cannot read {what} ({reason(err)})") from None
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise UsageError(f"{path}: {what} is over the limit of {limit:,} bytes")
    return raw


def read_input_text(path: str | os.PathLike[str], what: str, limit: int = MAX_INPUT_BYTES) -> str:
    """:func:`read_input_file` decoded as UTF-8 (a one-line error otherwise)."""
    raw = read_input_file(path, what, limit)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: {what} is not UTF-8 text (byte {err.start})") from None


def parse_toml_text(text: str, source: str) -> dict[str, Any]:
    """``tomllib.loads`` whose every failure (syntax, nesting too deep) is one line naming
    ``source``; tomllib's own message names the line and column."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{source}: TOML syntax error: {err}") from None
    except RecursionError:
        raise UsageError(f"{source}: TOML is nested too deeply") from None
    except Exception as err:  # tomllib should only raise TOMLDecodeError; be safe anyway
        raise UsageError(f"{source}: cannot parse TOML ({type(err).__name__}: {err})") from None


def parse_json_text(text: str, source: str) -> Any:
    """``json.loads`` whose every failure (syntax, nesting too deep, huge numbers) is one
    line naming ``source``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise UsageError(f"{source}: JSON is nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, and int() of a 5,000-digit literal
        raise UsageError(f"{source}: not valid JSON ({reason(err)})") from None
