"""Plugins from the user's own Python files: ``aebench --plugin FILE`` and a suite's
``plugins = [...]``, besides installed entry points.

Importing a plugin file runs its ``@models.register`` / ``@register_family`` / … decorators, so
it registers whatever it declares. The files in use are also put in ``$AEBENCH_PLUGINS``
(absolute paths, ``os.pathsep``-separated): worker processes and local Ray workers inherit the
variable and load the same files before a run (:func:`load_env_plugins`), so a suite's runs find
the same models wherever they execute. Plugins are loaded at those explicit points only, never
from inside a registry lookup, so aebench's own packages have finished importing — the
built-ins are registered — before any plugin runs.

No aebench commit holds a plugin's code, so each file imported is hashed as it is read, and
:func:`plugin_code` names the files and their hashes for the record every run keeps of the code
its numbers came from (``packages`` in the store, beside the numeric packages' versions).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from aebench.core.errors import UsageError

ENV = "AEBENCH_PLUGINS"
#: absolute path → module name, for the files already imported in this process
_LOADED: dict[str, str] = {}
#: absolute path → SHA-256 of the file's bytes as they were imported
_DIGESTS: dict[str, str] = {}


def load_plugin_file(path: str | os.PathLike[str]) -> None:
    """Import the Python file at ``path`` once per process; any failure is one line."""
    file = Path(path).expanduser().resolve()
    key = str(file)
    if key in _LOADED:
        return
    if not file.is_file() or file.suffix != ".py":
        raise UsageError(f"plugin {path}: not a Python file (.py)")
    name = f"aebench_plugin_{file.stem}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise UsageError(f"plugin {path}: cannot be imported")
    try:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError as err:
        raise UsageError(f"plugin {path}: cannot be read ({err.strerror or err})") from None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _LOADED[key] = name  # before running it: a plugin that imports aebench must not recurse
    _DIGESTS[key] = digest
    try:
        spec.loader.exec_module(module)
    except UsageError:
        raise
    except Exception as err:  # the user's code: report it, do not trace through aebench
        del sys.modules[name]
        del _LOADED[key]
        _DIGESTS.pop(key, None)
        where = ""
        tb = err.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == key:
                where = f" (line {tb.tb_lineno})"
            tb = tb.tb_next
        detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UsageError(
            f"plugin {path}{where}: {type(err).__name__}{': ' + detail if detail else ''}"
        ) from None


def use_plugins(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Import ``paths`` now and add them to ``$AEBENCH_PLUGINS`` for child processes."""
    paths = list(paths)
    for path in paths:
        load_plugin_file(path)
    files = [str(Path(p).expanduser().resolve()) for p in paths]
    known = [p for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    os.environ[ENV] = os.pathsep.join(dict.fromkeys([*known, *files]))


def load_env_plugins() -> None:
    """Import the files named in ``$AEBENCH_PLUGINS`` (a worker's share of the driver's)."""
    for path in os.environ.get(ENV, "").split(os.pathsep):
        if path:
            load_plugin_file(path)


def plugin_code() -> list[str]:
    """``plugin NAME sha256:HASH`` (the first 12 hex digits) for each plugin file imported in
    this process, in import order: what a run records of code that no aebench commit holds."""
    return [f"plugin {Path(path).name} sha256:{digest[:12]}" for path, digest in _DIGESTS.items()]
