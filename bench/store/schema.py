"""The results store's schema and the environment record each run carries
(bench/store/database.py)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import math
import os
import platform
import socket
import sqlite3
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from aebench import __version__
from aebench.core.plugins import plugin_code
from aebench.core.registry import plugin_distributions
from aebench.store.migrations import (
    v1_to_v2,
    v2_to_v3,
    v3_to_v4,
    v4_to_v5,
    v5_to_v6,
    v6_to_v7,
    v7_to_v8,
    v8_to_v9,
    v9_to_v10,
)

DEFAULT_STORE = Path("runs") / "aebench.sqlite"
STORE_ENV = "AEBENCH_STORE"
SCHEMA_VERSION = 10
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
    packages        TEXT,
    python_version  TEXT,
    device          TEXT,
    threads         INTEGER,
    host            TEXT,
    pid             INTEGER,
    started_at      TEXT,
    ended_at        TEXT,
    artifacts       TEXT,
    weights_sha256  TEXT,
    resources       TEXT,
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
CREATE TABLE IF NOT EXISTS evaluations (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    family      TEXT NOT NULL,
    options     TEXT NOT NULL,
    environment TEXT,
    PRIMARY KEY (run_id, family)
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
    "packages",
    "python_version",
    "device",
    "threads",
    "host",
    "pid",
    "resources",
)

#: Schema migrations: ``MIGRATIONS[v]`` upgrades a store from version ``v`` to ``v + 1``. Each
#: runs inside the transaction that also bumps ``schema_version``, so a failed migration leaves
#: the store at its old version (bench/store/migrations.py).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: v1_to_v2,
    2: v2_to_v3,
    3: v3_to_v4,
    4: v4_to_v5,
    5: v5_to_v6,
    6: v6_to_v7,
    7: v7_to_v8,
    8: v8_to_v9,
    9: v9_to_v10,
}


def default_store_path() -> Path:
    """``$AEBENCH_STORE`` if set, else ``runs/aebench.sqlite`` (relative to the cwd)."""
    env = os.environ.get(STORE_ENV)
    return Path(env) if env else DEFAULT_STORE


def now_utc() -> str:
    """The time now, UTC, to the second (ISO 8601): how the store writes every time."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _ro_uri(path: Path) -> str:
    # as_uri() percent-encodes '?', '#', '%' and spaces, which would otherwise break the URI.
    return path.absolute().as_uri() + "?mode=ro"


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------
def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The checked-out commit of the aebench source tree (or ``cwd``), or None outside git;
    ``-dirty`` is appended when tracked files differ from it, since the numbers then come
    from code that no commit holds."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent.parent
    commit = _git(where, "rev-parse", "HEAD")
    if not commit:
        return None
    # --no-optional-locks: a run never takes .git/index.lock from under the user's own git
    changed = _git(where, "--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
    return f"{commit}-dirty" if changed else commit


def _git(where: Path, *args: str) -> str | None:
    """``git ARGS``'s output in ``where``, stripped; None when git fails or is missing."""
    try:
        out = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True,
                             timeout=5, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment(device: str | None = None) -> dict[str, Any]:
    """What a run's numbers depend on besides its config, recorded beside every run.

    Keys: ``git_commit`` (None outside git), ``aebench_version``, ``torch_version``,
    ``packages`` (:func:`package_versions`), ``python_version``, ``device`` (as given, else
    ``cuda`` if available else ``cpu``), ``threads`` (torch intra-op threads), ``host``, ``pid``.
    """
    try:
        # deferred: this module is on `aebench --help`'s path and needs torch nowhere else
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
        "packages": package_versions(),
        "python_version": platform.python_version(),
        "device": device,
        "threads": threads,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


#: the installed packages whose code computes a run's numbers, besides torch (its own column)
NUMERIC_PACKAGES = (
    "torchvision",
    "torchmetrics",
    "numpy",
    "scipy",
    "scikit-learn",
    "torch-fidelity",
    "mlxtend",
    "pillow",  # decodes the image-folder dataset's files (and torchvision's CelebA)
)


def package_versions() -> str:
    """``name version`` of each installed :data:`NUMERIC_PACKAGES`, then of each plugin this
    process imported (a distribution's version, a plugin file's SHA-256), comma-separated. The
    versions are read from the installed metadata, so nothing is imported."""
    found = []
    for name in NUMERIC_PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional extra that is not installed
    return ", ".join([*found, *plugin_distributions(), *plugin_code()])


def cpu_name() -> str:
    """This machine's CPU model (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# -- the metrics table's rows ------------------------------------------------------------------
def as_number(value: Any) -> float:
    """A metric value as float; numpy/torch scalars via ``.item()``. Raises if not a number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return float(value.item())
    return float(value)


def metric_rows(
    run_id: int, metrics: Mapping[str, Any], history: Sequence[Mapping[str, Any]]
) -> Iterator[tuple[int, str, float | None, str]]:
    """The ``metrics`` table's rows of one run: its final metrics, then each history entry's
    numbers under its phase (``epoch-k``, ``step-k``, or the entry's own ``phase``)."""
    for name, value in metrics.items():
        yield run_id, str(name), nan_to_none(as_number(value)), "final"
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
            yield run_id, str(name), nan_to_none(as_number(value)), phase


def nan_to_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value
