"""Peak tensor memory of a piece of code, on CUDA and on the CPU alike.

What a user wants to know is "how much memory does a training step of this model need on top of
the model itself": activations kept for backward, gradients, temporaries. CUDA's caching
allocator counts that exactly (``max_memory_allocated``). The CPU has no such counter, and the
process's resident set is the wrong proxy: freed blocks stay resident in the C allocator, so a
step that reuses them shows no growth at all (measured: ≈ 0 MB for every model), and the kernel's
peak-RSS counter is not reliable in every sandbox. So on the CPU the allocations themselves are
recorded, with torch's profiler (``profile_memory=True``): every allocation and free made through
PyTorch's CPU allocator during the block, in order, and the peak of their running sum is the
number. Both devices therefore report the same thing: the peak of tensor memory allocated inside
the block above what was live when it started.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile

import torch

_NOISE = ("USDT:", "gpuGetDeviceCount", "Memory block of unknown size", "profiler_start")


class PeakMemory:
    """Context manager: ``peak_mb`` is the peak tensor memory (MiB) allocated inside the block.

    On the CPU the block runs under torch's profiler, which slows it down: measure memory in its
    own pass, never around code being timed. ``peak_mb`` is NaN where the profiler is unavailable.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb = math.nan

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # kineto's info lines on stderr
        self._quiet = _QuietStderr()
        self._quiet.__enter__()
        try:
            self._prof = torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
            )
            self._prof.__enter__()
        except Exception:  # no profiler here: the number is unknown, not zero
            self._prof = None
            self._quiet.__exit__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) - self._base
            self.peak_mb = max(0.0, peak / 2**20)
            return
        if self._prof is None:
            return
        try:
            self._prof.__exit__(None, None, None)
        finally:
            self._quiet.__exit__()
        if exc[0] is None:
            self.peak_mb = _peak_of_allocations(self._prof) / 2**20


def _peak_of_allocations(prof: torch.profiler.profile) -> float:
    """Peak of the running sum of the allocation events (frees are negative) in time order."""
    try:  # here, not at the top: a private torch API that some versions lack (handled below)
        from torch._C._profiler import _EventType

        tree = list(prof.profiler.kineto_results.experimental_event_tree())
    except (ImportError, AttributeError):  # a torch whose profiler lacks the event tree
        return math.nan
    events: list[tuple[int, int]] = []
    while tree:
        event = tree.pop()
        tree.extend(event.children)
        if event.tag == _EventType.Allocation:
            events.append((event.start_time_ns, event.extra_fields.alloc_size))
    events.sort()
    running = peak = 0
    for _, size in events:
        running += size
        peak = max(peak, running)
    return float(peak)


class _QuietStderr:
    """Holds the process's stderr (fd 2) in a file while the profiler starts and stops, then
    writes back every line that is not the profiler's own chatter (kineto's info lines, its
    "no GPU" error and c10's one-time note about blocks allocated before profiling)."""

    def __enter__(self) -> _QuietStderr:
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._file = tempfile.TemporaryFile(mode="w+b")
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        kept = [
            line
            for line in self._file.read().decode(errors="replace").splitlines(keepends=True)
            if not any(mark in line for mark in _NOISE)
        ]
        self._file.close()
        if kept:
            sys.stderr.write("".join(kept))
