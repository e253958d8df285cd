"""Speed and memory: what a model costs to train and to use.

Nobody else reports these per model, and a 2× slower model may not be worth 1 FID point. All
measurements take callables, so the timed code is exactly the harness's own code:

* ``train_samples_per_s`` — steady state: ``warmup`` steps are run and discarded first (lazy
  allocations, autotuning, caches), then ``steps`` steps are timed;
* ``encode_samples_per_s`` / ``decode_samples_per_s`` — at batch 256;
* ``latency_ms_p50`` / ``latency_ms_p95`` — wall time of one reconstruction call on one batch
  (``latency_batch`` images, 1 by default: the interactive case);
* ``peak_mem_mb`` — on CUDA the allocator's max allocated bytes; on the CPU the growth of the
  resident set over its value before the measurement, sampled from ``/proc/self/statm`` by a
  background thread (no psutil), falling back to ``ru_maxrss`` growth elsewhere.

Device, dtype and torch's thread count are recorded beside the numbers: they mean nothing
without them.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

SPEED_BATCH = 256


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) for this process; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _hwm_bytes() is not None
    except OSError:
        return False


def _hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class PeakMemory:
    """Context manager measuring peak memory growth (MB) of the code inside it.

    On Linux the kernel's own peak-RSS counter is reset on entry and read on exit, so even a
    short-lived allocation is seen; elsewhere a sampling thread approximates it.
    """

    def __init__(self, device: torch.device, interval_s: float = 0.002) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()

    def _watch(self) -> None:
        while not self._stop.is_set():
            rss = _rss_bytes()
            if rss is not None:
                self._peak = max(self._peak, rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            _sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        base = _rss_bytes()
        self._hwm = base is not None and _reset_hwm()
        self._proc = base is not None
        self._base = base if base is not None else _maxrss_bytes()
        self._peak = self._base
        if self._proc:
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            _sync(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._proc:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, _rss_bytes() or 0)
            if self._hwm:
                peak = max(peak, _hwm_bytes() or 0)
        else:
            peak = _maxrss_bytes()
        self.peak_mb = max(0.0, (peak - self._base) / 2**20)


def samples_per_s(
    fn: Callable[[torch.Tensor], Any],
    batch: torch.Tensor,
    device: torch.device,
    warmup: int = 2,
    repeats: int = 5,
) -> float:
    """Throughput of ``fn(batch)`` in samples per second after ``warmup`` discarded calls."""
    with torch.no_grad():
        for _ in range(warmup):
            fn(batch)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn(batch)
        _sync(device)
    return repeats * batch.shape[0] / (time.perf_counter() - t0)


def latency_ms(
    fn: Callable[[torch.Tensor], Any],
    batch: torch.Tensor,
    device: torch.device,
    warmup: int = 3,
    repeats: int = 50,
) -> tuple[float, float]:
    """Median and 95th-percentile wall time of one ``fn(batch)`` call, in milliseconds."""
    times = []
    with torch.no_grad():
        for _ in range(warmup):
            fn(batch)
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            fn(batch)
            _sync(device)
            times.append((time.perf_counter() - t0) * 1000)
    q = torch.tensor(times, dtype=torch.float64).quantile(torch.tensor([0.5, 0.95]).double())
    return float(q[0]), float(q[1])


def train_samples_per_s(
    step: Callable[[torch.Tensor], Any],
    batches: Callable[[int], torch.Tensor],
    device: torch.device,
    warmup: int = 3,
    steps: int = 20,
    max_seconds: float = 1.5,
    min_steps: int = 5,
) -> float:
    """Steady-state training throughput of ``step(batch)``; ``batches(i)`` gives batch i.

    Times ``steps`` steps after ``warmup``, but stops early once ``max_seconds`` have passed
    (after at least ``min_steps``): a slow model (a conv VAE-GAN on a CPU) gets a measurement as
    long as a fast one's, not ten times longer. Elapsed time is checked on the host clock, so on
    CUDA the loop runs ahead of the device; the final synchronize makes the total exact.
    """
    for i in range(warmup):
        step(batches(i))
    _sync(device)
    seen = 0
    t0 = time.perf_counter()
    for i in range(steps):
        x = batches(warmup + i)
        step(x)
        seen += x.shape[0]
        if i + 1 >= min_steps and time.perf_counter() - t0 >= max_seconds:
            break
    _sync(device)
    return seen / (time.perf_counter() - t0)


def speed_metrics(
    encode: Callable[[torch.Tensor], torch.Tensor],
    decode: Callable[[torch.Tensor], torch.Tensor],
    reconstruct: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    device: torch.device,
    train_step: Callable[[torch.Tensor], Any] | None = None,
    train_batch_size: int = 64,
    batch_size: int = SPEED_BATCH,
    latency_batch: int = 1,
) -> tuple[dict[str, float], dict[str, Any]]:
    """The speed metrics for float ``images`` in [0, 1] (at least one batch), plus the meta
    (device, dtype, threads, batch sizes) they were measured under."""
    n = images.shape[0]
    batch = images[:batch_size].to(device)
    if batch.shape[0] < batch_size:
        reps = -(-batch_size // batch.shape[0])
        batch = batch.repeat(reps, 1, 1, 1)[:batch_size]
    with torch.no_grad():
        codes = encode(batch)
    values: dict[str, float] = {}
    with PeakMemory(device) as mem:
        values["encode_samples_per_s"] = samples_per_s(encode, batch, device)
        values["decode_samples_per_s"] = samples_per_s(decode, codes, device)
        p50, p95 = latency_ms(reconstruct, batch[:latency_batch], device)
        values["latency_ms_p50"], values["latency_ms_p95"] = p50, p95
        if train_step is not None:

            def batches(i: int) -> torch.Tensor:
                start = (i * train_batch_size) % max(n - train_batch_size, 1)
                return images[start : start + train_batch_size].to(device)

            values["train_samples_per_s"] = train_samples_per_s(train_step, batches, device)
    values["peak_mem_mb"] = mem.peak_mb
    meta = {
        "device": str(device),
        "dtype": str(batch.dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "train_batch_size": train_batch_size,
        "latency_batch": latency_batch,
    }
    return values, meta
