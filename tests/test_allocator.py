"""The CPU allocator setting: large training buffers come from the heap and are reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc's mallopt exists only on Linux"
)

# Allocates and frees an 8 MiB tensor (a typical activation), then reports where glibc put it:
# ``hblkhd`` is the memory held in separate mmap'ed blocks, ``arena`` the heap's size.
PROBE = r"""
import ctypes, json, torch
from aebench.core.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
state = keep_freed_memory()
x = torch.empty(2 << 20)  # 8 MiB of float32
x.fill_(1.0)
held = libc.mallinfo2()
during = {"mmapped": held.hblkhd, "arena": held.arena}
del x
after = libc.mallinfo2()
print(json.dumps({"state": state, "during": during, "arena_after": after.arena}))
"""


def _probe(**env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.splitlines()[-1])


def test_tuned_allocator_keeps_large_buffers_on_the_heap_after_free():
    tuned = _probe()
    assert tuned["state"] == "tuned"
    # the 8 MiB tensor lives in the heap, not in its own mapping that free() would unmap...
    assert tuned["during"]["mmapped"] < 8 << 20 <= tuned["during"]["arena"]
    # ...and the heap is not trimmed back when it is freed, so the next batch reuses the pages
    assert tuned["arena_after"] >= 8 << 20


def test_default_allocator_can_be_kept():
    plain = _probe(AEBENCH_MALLOC="default")
    assert plain["state"] == "default"
    # glibc's own behaviour: a block this large gets its own mapping
    assert plain["during"]["mmapped"] >= 8 << 20


def test_allocation_failures_are_told_from_other_errors():
    """One rule for the commands that turn a failed allocation into one line (building a
    model, `aebench speed`): torch's own refusal of an impossible tensor counts, a shape
    error does not."""
    import torch

    from aebench.core.devices import is_allocation_failure

    try:
        torch.empty(2**62, dtype=torch.uint8)
    except RuntimeError as err:
        real = err
    assert is_allocation_failure(real) and is_allocation_failure(MemoryError())
    assert is_allocation_failure(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    try:
        torch.ones(2, 3) @ torch.ones(2, 3)
    except RuntimeError as err:
        assert not is_allocation_failure(err)
