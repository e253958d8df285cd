"""The report folder is replaced whole: a reader sees the previous report or the new one,
never a mix, and a full disk or a kill leaves the previous report as it was.

Every file is written into a staging folder beside the target (same parent, so a rename is
atomic), fsynced, and the staging folder is swapped with the target in one step
(``renameat2(RENAME_EXCHANGE)`` on Linux). Where a file system cannot exchange, the old folder
is renamed aside, the new one renamed into place and the old one removed; a kill between those
two renames leaves no target but the old report aside, and the next report run renames it
back before anything else. The temp names are ``.NAME.<pid>-<random>.new.tmp`` (staging) and
``.NAME.<pid>-<random>.old.tmp`` (set aside); each run first removes those a dead process
left, and the temp files of :func:`aebench.core.atomic.atomic_write` for the same name.

A report replaces its whole folder, so a folder holding anything that is not a report output
(a user's notes, a run folder, ``.``) is refused in one line rather than deleted.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from aebench.core.atomic import current_umask, fsync_dir, reason
from aebench.core.errors import UsageError

#: the files a report writes (figures are ``figN_*.png``)
REPORT_FILES = frozenset(
    {"report.md", "report.html", "table.csv", "table.tex", "claims.csv", "comparison.csv"}
)
_FIGURE_RE = re.compile(r"^fig\d+_[A-Za-z0-9_.+@-]*\.png$")
#: the random part of an atomic_write temp file (mkstemp: ``.<name>.<8 characters>.tmp``)
_RANDOM = r"[A-Za-z0-9_]{8}"


def is_report_output(name: str) -> bool:
    """A file name the report writes, or an atomic-write temp file of one."""
    if name in REPORT_FILES or _FIGURE_RE.match(name):
        return True
    found = re.match(rf"^\.(.+)\.{_RANDOM}\.tmp$", name)
    return bool(found and (found.group(1) in REPORT_FILES or _FIGURE_RE.match(found.group(1))))


def _temp_re(name: str) -> re.Pattern[str]:
    """Our staging/set-aside folders for ``name`` (group ``pid``, ``kind``), or an
    atomic_write temp file of ``name`` (no pid)."""
    ours = r"(?P<pid>\d+)-[A-Za-z0-9_]+\.(?P<kind>new|old)"
    return re.compile(rf"^\.{re.escape(name)}\.(?:{ours}|{_RANDOM})\.tmp$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, another user's
        return True
    return True


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def recover(target: Path) -> None:
    """Undo what a killed report run left beside ``target``: a report set aside with no
    report in its place is renamed back; every other stale temp entry is removed. Entries of a
    process that still runs are left alone."""
    pattern = _temp_re(target.name)
    stale = []
    for entry in target.parent.iterdir():
        found = pattern.match(entry.name)
        if found and not (found.group("pid") and _alive(int(found.group("pid")))):
            stale.append((found.group("kind"), entry))
    if not target.exists() and not target.is_symlink():
        aside = sorted((e for k, e in stale if k == "old"), key=lambda e: e.stat().st_mtime)
        if aside:
            os.rename(aside[-1], target)
            fsync_dir(target.parent)
            stale = [(k, e) for k, e in stale if e != aside[-1]]
    for _, entry in stale:
        _remove(entry)


def check_target(target: Path) -> None:
    """Refuse (one line) a target that is not a folder, or a folder with anything in it that
    the report did not write: replacing the folder would delete it."""
    if target.exists() and not target.is_dir():
        raise UsageError(f"output path {target} exists and is not a directory")
    if not target.exists():
        return
    try:
        foreign = sorted(
            e.name for e in target.iterdir() if not (e.is_file() and is_report_output(e.name))
        )
    except OSError as err:
        raise UsageError(f"cannot read output directory {target}: {reason(err)}") from None
    if foreign:
        raise UsageError(
            f"output directory {target} holds {len(foreign)} file(s) a report did not write "
            f"(first: {foreign[0]}); a report replaces its whole folder, so give a new or "
            "empty one, or move them out"
        )


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2``); False where that is not supported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


class Staging:
    """A report folder being written beside ``target``; :meth:`commit` swaps it into place."""

    def __init__(self, target: Path, folder: Path) -> None:
        self.target = target
        self.folder = folder

    def write(self, name: str, produce: Callable[[Path], None]) -> Path:
        """Make file ``name`` by ``produce(path)`` in the staging folder and fsync it; a
        failure (a full disk) is one line naming the file. Returns the staged path."""
        path = self.folder / name
        try:
            produce(path)
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
        except OSError as err:
            raise UsageError(f"cannot write {self.target / name}: {reason(err)}") from None
        return path

    def text(self, name: str, text: str) -> Path:
        """Write ``text`` (UTF-8) as file ``name``."""
        return self.write(name, lambda p: p.write_text(text, encoding="utf-8"))

    def commit(self) -> None:
        """Put the staged folder in place of the target; remove the previous report."""
        fsync_dir(self.folder)
        previous = None
        try:
            if not self.target.exists():
                os.rename(self.folder, self.target)
            elif _exchange(self.folder, self.target):
                previous = self.folder  # the staging name now holds the previous report
            else:
                previous = Path(str(self.folder).removesuffix(".new.tmp") + ".old.tmp")
                os.rename(self.target, previous)
                os.rename(self.folder, self.target)
        except OSError as err:
            raise UsageError(f"cannot replace {self.target}: {reason(err)}") from None
        fsync_dir(self.target.parent)
        if previous is not None:
            with contextlib.suppress(OSError):  # else the next report run removes it
                _remove(previous)


@contextlib.contextmanager
def staged(out: str | os.PathLike[str]) -> Iterator[Staging]:
    """A :class:`Staging` for the report folder ``out``: the caller writes into it and
    commits; on any error (or if it never commits) the staging folder is removed and the
    previous report stays as it was."""
    target = Path(os.path.abspath(out))
    if target.is_symlink():  # replace the folder it points to, keep the link
        target = target.resolve()
    if not target.name:
        raise UsageError(f"output directory {out} cannot be replaced; name a folder inside it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        recover(target)
    except OSError as err:
        raise UsageError(f"cannot prepare output directory {target}: {reason(err)}") from None
    check_target(target)
    try:
        prefix = f".{target.name}.{os.getpid()}-"
        folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=".new.tmp", dir=target.parent))
        mode = stat.S_IMODE(target.stat().st_mode) if target.is_dir() else 0o777 & ~current_umask()
        os.chmod(folder, mode)
    except OSError as err:
        raise UsageError(f"cannot create output directory {target}: {reason(err)}") from None
    stage = Staging(target, folder)
    try:
        yield stage
    finally:
        with contextlib.suppress(OSError):  # gone when committed; else the next run removes it
            _remove(folder)


__all__ = ["REPORT_FILES", "Staging", "check_target", "is_report_output", "recover", "staged"]
