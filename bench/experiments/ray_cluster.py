"""Reaching the Ray cluster the ray executor runs on (docs/cluster.md): importing Ray, joining
the cluster at an address or starting a local one, and refusing, in one line and before anything
is written, a cluster that cannot be reached or has no node large enough for one run.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from aebench.core.errors import UsageError


def require_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`UsageError` if it cannot be imported.

    Any exception counts, not only ImportError: a broken install (a missing shared library, a
    version clash) raises all sorts. The runner calls this before it opens the store, so a
    suite that cannot run leaves no pending rows behind.
    """
    try:
        import ray  # deferred: optional, and slow to import; only the ray executor needs it
    except ImportError as err:
        if err.name == "ray":
            raise UsageError("the ray executor needs Ray: pip install 'aebench[ray]'") from None
        problem: BaseException = err
    except (Exception, SystemExit) as err:
        problem = err
    else:
        return ray
    detail = " ".join(f"{type(problem).__name__}: {problem}".split())[:200]
    raise UsageError(f"the ray executor cannot import Ray ({detail})") from None


def join_cluster(ray: Any, address: str | None, quiet: bool, threads_per_run: int) -> bool:
    """Join (or start) the cluster unless this process already has one, and check that some
    node can hold a run of ``threads_per_run`` CPUs; True when the cluster was joined here (so
    the caller shuts it down when done)."""
    started_here = not ray.is_initialized()
    if started_here and not address and threads_per_run > _local_cpus():
        # a local cluster is this machine: refused before Ray starts (and prints its own lines)
        raise UsageError(
            f"--threads-per-run {threads_per_run} is more than this machine has "
            f"({_local_cpus()} CPUs), and a local Ray cluster has no other node"
        )
    if started_here:
        _connect(ray, address, quiet)
    largest = _largest_node_cpus(ray)
    if threads_per_run > largest:
        if started_here:
            ray.shutdown()
        raise UsageError(
            f"--threads-per-run {threads_per_run} is more than any node of the Ray cluster has "
            f"(the largest has {largest:g} CPUs)"
        )
    return started_here


def _largest_node_cpus(ray: Any) -> float:
    """The most CPUs any live node of the cluster offers."""
    return max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0)


def _refuse_unreachable(address: str, timeout_s: float = 5.0) -> None:
    """A ``HOST:PORT`` (or ``ray://HOST:PORT``) nothing answers on is one line, at once: Ray's
    own ``init`` retries such an address for minutes. ``auto`` and other forms go to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as err:  # refused, timed out, unknown host, port > 65535
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise UsageError(
            f"cannot reach a Ray cluster at {address!r} ({reason or 'timed out'}); start one "
            "with `ray start --head` (docs/cluster.md) or check the address"
        ) from None


def _local_cpus() -> int:
    """The CPUs of the local Ray cluster aebench starts without ``--ray-address``: this
    machine's."""
    return os.cpu_count() or 1


def _connect(ray: Any, address: str | None, quiet: bool) -> None:
    """Join the cluster at ``address`` (one line when it cannot be reached), or start a local
    one on this machine's cores."""
    if not address:
        ray.init(
            address="local",  # a new cluster here, never one found by Ray's auto-detection
            num_cpus=_local_cpus(),
            include_dashboard=False,
            object_store_memory=200 * 1024**2,
            log_to_driver=not quiet,
        )
        return
    _refuse_unreachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        detail = " ".join(str(err).split())[:160]
        raise UsageError(f"cannot reach a Ray cluster at {address!r} ({detail})") from None
