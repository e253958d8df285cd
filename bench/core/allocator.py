"""Keep freed CPU memory in the process, so a training step does not page-fault on every batch.

glibc's ``malloc`` serves large blocks (above a threshold that starts at 128 KiB) with fresh
``mmap`` calls and hands them back to the kernel on ``free``; it also trims the heap top back to
the kernel. A CPU training step allocates and frees the same few-megabyte activations every
batch, so each step touches freshly mapped pages and pays a page fault per 4 KiB — on the 2-core
reference VM this cost a conv VAE 20–30 % of its training throughput. PyTorch's CPU tuning
guide fixes it by preloading jemalloc/tcmalloc; aebench gets the same effect without a new
dependency by raising glibc's own thresholds once with ``mallopt``: blocks up to 32 MiB come from
the heap and up to 1 GiB of freed memory stays mapped for reuse.

The setting is process-wide and cannot be undone, which is right for a process that trains.
``AEBENCH_MALLOC=default`` leaves the allocator alone (e.g. to measure its effect). Elsewhere
than Linux/glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's maximum (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 1 << 30

_state: str | None = None  # "tuned", "default" or "unavailable", once decided


def keep_freed_memory() -> str:
    """Raise glibc's mmap and trim thresholds (once per process); returns what the allocator
    now is: ``"tuned"``, ``"default"`` (switched off by ``AEBENCH_MALLOC=default``) or
    ``"unavailable"`` (not glibc)."""
    global _state
    if _state is not None:
        return _state
    if os.environ.get("AEBENCH_MALLOC", "").lower() == "default":
        _state = "default"
    elif not sys.platform.startswith("linux"):
        _state = "unavailable"
    else:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # musl and other libcs without mallopt
            _state = "unavailable"
        else:
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(
                _M_TRIM_THRESHOLD, TRIM_THRESHOLD
            )
            _state = "tuned" if ok else "unavailable"
    return _state


def allocator_state() -> str:
    """What :func:`keep_freed_memory` decided, or ``"default"`` if it has not run."""
    return _state or "default"
