"""Speed and memory: what a model costs to train and to use.

Nobody else reports these per model, and a 2× slower model may not be worth 1 FID point. All
measurements take callables, so the timed code is exactly the harness's own code:

* ``train_samples_per_s`` — steady state: ``warmup`` steps are run and discarded first (lazy
  allocations, autotuning, caches), then ``steps`` steps are timed;
* ``encode_samples_per_s`` / ``decode_samples_per_s`` — at batch 256;
* ``latency_ms_p50`` / ``latency_ms_p95`` — wall time of one reconstruction call on one batch
  (``latency_batch`` images, 1 by default: the interactive case);
* ``peak_mem_mb`` — peak tensor memory of one training step (or, without one, of one
  reconstruction at batch 256) above the model's resting state, measured in its own untimed pass
  (see :mod:`aebench.metrics.memory`).

Device, dtype and torch's thread count are recorded beside the numbers: they mean nothing
without them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from aebench.core.allocator import allocator_state, keep_freed_memory
from aebench.metrics.memory import PeakMemory

SPEED_BATCH = 256


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    (device, dtype, threads, CPU allocator, batch sizes) they were measured under."""
    if device.type == "cpu":
        keep_freed_memory()  # as the trainer does, so eval-only runs measure the same way
    n = images.shape[0]
    batch = images[:batch_size].to(device)
    if batch.shape[0] < batch_size:
        reps = -(-batch_size // batch.shape[0])
        batch = batch.repeat(reps, 1, 1, 1)[:batch_size]
    with torch.no_grad():
        codes = encode(batch)
    values: dict[str, float] = {}
    values["encode_samples_per_s"] = samples_per_s(encode, batch, device)
    values["decode_samples_per_s"] = samples_per_s(decode, codes, device)
    p50, p95 = latency_ms(reconstruct, batch[:latency_batch], device)
    values["latency_ms_p50"], values["latency_ms_p95"] = p50, p95
    if train_step is not None:

        def batches(i: int) -> torch.Tensor:
            start = (i * train_batch_size) % max(n - train_batch_size, 1)
            return images[start : start + train_batch_size].to(device)

        values["train_samples_per_s"] = train_samples_per_s(train_step, batches, device)
        with PeakMemory(device) as mem:  # its own pass: the profiler must not touch the timings
            train_step(batches(0))
    else:
        with PeakMemory(device) as mem, torch.no_grad():
            reconstruct(batch)
    values["peak_mem_mb"] = mem.peak_mb
    meta = {
        "device": str(device),
        "dtype": str(batch.dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "allocator": allocator_state(),
        "batch_size": batch_size,
        "train_batch_size": train_batch_size,
        "latency_batch": latency_batch,
    }
    return values, meta
