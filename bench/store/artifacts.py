"""Where a stored run's files are, and which weights file is the one the run wrote.

The store records each run's artifacts folder **relative to the store's own folder** (absolute
only when it lies outside it), and every reader resolves it the same way, so a store and its
``artifacts/`` can be copied or moved together and are always read as a pair: never through the
current directory, where another project's ``runs/artifacts/...`` may sit under the same name.

Stores written before this rule held the folder as the runner spelled it from the directory it
ran in (``runs/artifacts/<suite>/<run>`` with the default store). Such a relative path that does
not exist in the store's folder is found by its ``artifacts/<suite>/<run>`` tail there — the
layout the runner has always used — and so still names the store's own copy.

When a run finishes the store also keeps the sha256 of its ``model.safetensors``
(:func:`weights_sha256`), so ``aebench eval --store`` can tell the weights a run wrote from any
other file found in its folder.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

#: the folder names under a store's folder: ``artifacts/<suite>/<run name>-<short hash>``
_LAYOUT_DEPTH = 3


def stored_artifacts(folder: str | os.PathLike[str], store_path: Path) -> str:
    """How a run's artifacts ``folder`` is recorded in the store at ``store_path``: relative to
    the store's folder when inside it, else absolute (never relative to the current directory)."""
    base = os.path.abspath(store_path.parent)
    target = os.path.abspath(folder)
    if os.path.commonpath([base, target]) == base:
        return os.path.relpath(target, base)
    return target


def resolve_artifacts(stored: str | None, store_path: Path) -> str | None:
    """A run's recorded artifacts folder as a usable path: absolute as is; relative from the
    store's folder (an older store's ``<store folder>/artifacts/<suite>/<run>`` by its tail);
    None when nothing was recorded."""
    if not stored:
        return None
    path = Path(stored)
    if path.is_absolute():
        return stored
    base = store_path.parent
    here = base / path
    parts = path.parts
    if (
        not here.exists()
        and len(parts) > _LAYOUT_DEPTH
        and parts[-_LAYOUT_DEPTH] == "artifacts"
        and (base.joinpath(*parts[-_LAYOUT_DEPTH:])).exists()
    ):
        return str(base.joinpath(*parts[-_LAYOUT_DEPTH:]))
    return str(here)


def weights_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 (hex) of a weights file, read in chunks; ``OSError`` if it cannot be read or
    is not a regular file (a FIFO would block, a device never end)."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
