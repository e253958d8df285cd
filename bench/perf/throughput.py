"""``aebench speed``: throughput, latency, memory and FLOPs of every model, harness vs. a minimal
hand-written loop, measured side by side in one process.

Why a reference loop: a harness can hide overhead (host syncs, per-sample Python, extra copies)
that a plain PyTorch loop would not pay. Each measurement times the harness's own update step
(``Trainer.train_step`` on an in-memory batch slice) and a textbook loop on the same model, batch
and data, alternating repeats so that machine noise hits both alike; the ratio is computed from
those two numbers only.
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from aebench import models
from aebench.core.allocator import allocator_state
from aebench.core.devices import resolve_device
from aebench.core.text_table import text_table
from aebench.data import ImageData
from aebench.metrics.memory import PeakMemory
from aebench.metrics.speed import _sync, speed_metrics
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer


@dataclass(frozen=True)
class SpeedOptions:
    """What to measure and how long; defaults finish all models × archs in a few minutes."""

    models: tuple[str, ...] = ("ae", "vae", "beta-vae", "vae-gan")
    archs: tuple[str, ...] = ("mlp", "conv")
    batch_sizes: tuple[int, ...] = (64, 256)
    latent_dim: int = 16
    warmup_steps: int = 5
    steps: int = 20  #: optimizer steps per timed repeat
    repeats: int = 5  #: timed repeats per loop; the median is reported
    image_shape: tuple[int, int, int] = (1, 28, 28)
    #: the harness's device and speed switches (precision, channels_last, compile, ...); the
    #: batch size is set per measurement, and the reference loop stays plain
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class SpeedResult:
    model: str
    arch: str
    batch_size: int
    device: str
    dtype: str
    threads: int
    allocator: str  #: CPU malloc setting, see bench/core/allocator.py ("tuned" by default on Linux)
    params: int
    train_samples_per_s: float
    reference_samples_per_s: float
    ratio: float  #: harness / reference, same process, same model and batch
    encode_samples_per_s: float
    decode_samples_per_s: float
    latency_ms_p50: float
    latency_ms_p95: float
    peak_mem_mb: float
    flops_per_sample: float  #: forward + backward of one training step, per image
    achieved_gflops: float
    matmul_gflops: float
    extra: dict[str, Any] = field(default_factory=dict)


def matmul_gflops(
    device: torch.device,
    n: int = 1024,
    repeats: int = 10,
    warmup: int = 3,
    dtype: torch.dtype = torch.float32,
) -> float:
    """The machine's matrix-multiply rate (GFLOP/s) in ``dtype``: the ceiling to compare against
    (bf16 runs are compared with the bf16 rate, which on AMX or tensor cores is several times
    the fp32 one)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(warmup):
        a @ b
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def _synthetic_data(shape: tuple[int, int, int], n: int, device: torch.device) -> ImageData:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8)
    y = torch.zeros(n, dtype=torch.int64)
    return ImageData("synthetic", x, y, x[: min(n, 512)], y[: min(n, 512)]).to(device)


def reference_step(
    model: models.GenerativeAutoencoder, optimizers: list[torch.optim.Optimizer]
) -> Callable[[torch.Tensor], None]:
    """The textbook loop: for each optimizer, forward (the phase's own, where it declares
    one), backward on its loss term, step."""
    phases = model.phases()

    def step(x: torch.Tensor) -> None:
        for phase, opt in zip(phases, optimizers, strict=True):
            opt.zero_grad()
            (phase.terms or model.loss)(x)[phase.loss_key].backward()
            opt.step()

    return step


def _time_loop(
    step: Callable[[torch.Tensor], Any], batches: list[torch.Tensor], device: torch.device
) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for x in batches:
        step(x)
    _sync(device)
    return time.perf_counter() - t0


def _flops_per_sample(step: Callable[[torch.Tensor], Any], x: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter:
        step(x)
    return counter.get_total_flops() / x.shape[0]


def _harness_and_reference(
    name: str,
    arch: str,
    batch_size: int,
    opts: SpeedOptions,
    data: ImageData,
    device: torch.device,
) -> tuple[torch.nn.Module, Trainer, Callable[[torch.Tensor], None]]:
    """The model in the real :class:`Trainer`, and a twin trained by a plain hand-written loop
    on float batches (``reference(index)``): the yardstick the harness's overhead is read from."""
    torch.manual_seed(0)
    shape = dict(arch=arch, latent_dim=opts.latent_dim, image_shape=opts.image_shape)
    model = models.create(name, **shape).to(device)
    settings = dataclasses.replace(
        opts.train, epochs=1, batch_size=batch_size, device=str(device), quiet=True
    )
    trainer = Trainer(model, data, settings, name)
    ref_model = models.create(name, **shape).to(device)
    ref_opts = [torch.optim.Adam(p.params, lr=p.lr, betas=p.betas) for p in ref_model.phases()]
    ref = reference_step(ref_model, ref_opts)
    floats = data.train_x.float() / 255  # a hand-written loop typically keeps float tensors
    model.train()
    ref_model.train()
    return model, trainer, lambda idx: ref(floats[idx])


def _alternate(
    harness: Callable[[torch.Tensor], None],
    reference: Callable[[torch.Tensor], None],
    index: list[torch.Tensor],
    opts: SpeedOptions,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[list[float], list[float], list[float]]:
    """Warm both loops up, then time them in turns with a matmul rate between the repeats, so
    machine noise hits both alike: (harness times, reference times, matmul GFLOP/s)."""
    h_times, r_times, matmuls = [], [], []
    for idx in index[: opts.warmup_steps]:
        harness(idx)
        reference(idx)
    for _ in range(opts.repeats):
        h_times.append(_time_loop(harness, index, device))
        r_times.append(_time_loop(reference, index, device))
        matmuls.append(matmul_gflops(device, repeats=3, warmup=1, dtype=dtype))
    return h_times, r_times, matmuls


def measure(name: str, arch: str, batch_size: int, opts: SpeedOptions) -> SpeedResult:
    """Measure one model × arch × batch size; see the module docstring for the method.

    The matmul rate is timed between the repeats too: on a shared machine whose speed drifts by
    tens of percent within minutes, "% of matmul" is only meaningful against a rate measured
    at the same moment."""
    device = resolve_device(opts.train.device)
    dtype = torch.bfloat16 if opts.train.precision == "bf16" else torch.float32
    step_images = batch_size * models.get(name)[0].batches_per_step  # FactorVAE reads two
    n = step_images * (opts.steps + 1)
    data = _synthetic_data(opts.image_shape, n, device)
    model, trainer, reference = _harness_and_reference(name, arch, batch_size, opts, data, device)
    perm = torch.randperm(n, device=device)
    index = [perm[i * step_images : (i + 1) * step_images] for i in range(opts.steps)]

    def harness(idx: torch.Tensor) -> None:
        # the harness's data path: uint8 slice of a permutation, converted in the fetch
        trainer.train_step(ImageData.batch(data.train_x, idx))

    h_times, r_times, matmuls = _alternate(harness, reference, index, opts, device, dtype)
    with PeakMemory(device) as mem:  # one harness step, untimed: the profiler slows the CPU
        harness(index[0])
    samples = opts.steps * step_images
    train_sps = samples / statistics.median(h_times)
    ref_sps = samples / statistics.median(r_times)
    flops = _flops_per_sample(trainer.train_step, ImageData.batch(data.train_x, index[0]))

    # encode/decode throughput and latency exactly as `aebench eval` measures them
    trainer.end_speed_options()
    model.eval()
    inference, _ = speed_metrics(
        model.encode,
        model.decode,
        model.reconstruct,
        ImageData.batch(data.train_x, slice(0, 256)),
        device,
    )
    threads = torch.get_num_threads()
    matmul = statistics.median(matmuls)
    gc.collect()
    return SpeedResult(
        model=name,
        arch=arch,
        batch_size=batch_size,
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
        threads=threads,
        allocator=allocator_state(),
        params=sum(p.numel() for p in model.parameters()),
        train_samples_per_s=train_sps,
        reference_samples_per_s=ref_sps,
        ratio=train_sps / ref_sps,
        encode_samples_per_s=inference["encode_samples_per_s"],
        decode_samples_per_s=inference["decode_samples_per_s"],
        latency_ms_p50=inference["latency_ms_p50"],
        latency_ms_p95=inference["latency_ms_p95"],
        peak_mem_mb=mem.peak_mb,
        flops_per_sample=flops,
        achieved_gflops=flops * train_sps / 1e9,
        matmul_gflops=matmul,
    )


def run_speed(opts: SpeedOptions, progress: bool = True) -> list[SpeedResult]:
    """Measure every combination in ``opts``."""
    results = []
    for name in opts.models:
        models.get(name)
        for arch in opts.archs:
            if not models.supports_arch(name, arch):
                if progress:
                    print(f"  {name} is not built on {arch}: left out", file=sys.stderr)
                continue
            for bs in opts.batch_sizes:
                if progress:
                    print(f"  measuring {name} {arch} batch {bs} ...", file=sys.stderr, flush=True)
                results.append(measure(name, arch, bs, opts))
    return results


def format_table(results: list[SpeedResult]) -> str:
    cols = [
        ("model", "model", "s"),
        ("arch", "arch", "s"),
        ("batch", "batch_size", "d"),
        ("train/s", "train_samples_per_s", ".0f"),
        ("ref/s", "reference_samples_per_s", ".0f"),
        ("ratio", "ratio", ".2f"),
        ("enc/s", "encode_samples_per_s", ".0f"),
        ("dec/s", "decode_samples_per_s", ".0f"),
        ("p50 ms", "latency_ms_p50", ".2f"),
        ("p95 ms", "latency_ms_p95", ".2f"),
        ("MFLOP/img", "flops_per_sample", ""),
        ("GFLOP/s", "achieved_gflops", ".1f"),
        ("% matmul", "", ""),
        ("mem MB", "peak_mem_mb", ".0f"),
    ]
    rows = []
    for r in results:
        d = asdict(r)
        row = []
        for title, key, fmt in cols:
            if title == "MFLOP/img":
                row.append(f"{r.flops_per_sample / 1e6:.2f}")
            elif title == "% matmul":
                row.append(f"{100 * r.achieved_gflops / r.matmul_gflops:.0f}%")
            else:
                row.append(format(d[key], fmt))
        rows.append(row)
    lines = [text_table([c[0] for c in cols], rows, align="right")]
    if results:
        r = results[0]
        low = min(x.matmul_gflops for x in results)
        high = max(x.matmul_gflops for x in results)
        lines.append(
            f"device {r.device}, {r.dtype}, {r.threads} threads, allocator {r.allocator}, "
            f"matmul {low:.0f}–{high:.0f} GFLOP/s (1024², {r.dtype}, timed between the repeats)"
        )
    return "\n".join(lines)
