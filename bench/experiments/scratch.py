"""Node-local scratch folders for Ray tasks, and the sweep that removes those of dead tasks.

A task removes its own folder when it ends, but a task killed with its worker or its node never
runs that cleanup. Each folder's name carries its worker's PID (``aebench-run-<pid>-…``), so the
next task on the node removes the folders whose process is gone: a folder of a live process,
or of a PID taken by another process since, is left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIX = "aebench-run-"
_NAME = re.compile(rf"{PREFIX}(\d+)-")


def make_run_scratch() -> Path:
    """A new scratch folder in the node's temp folder, named after this process."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return True


def sweep_dead_scratch(root: Path | None = None) -> list[Path]:
    """Remove the scratch folders under ``root`` (the temp folder) whose process is gone;
    returns them."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        match = _NAME.match(folder.name)
        if match and folder.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
