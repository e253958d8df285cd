"""The calibration kernel of the speed gate (bench/gates.py): an fp32 1024 x 1024 matmul.

Every other benchmark is also recorded as a ratio to this one's median, timed in the same run,
so a baseline measured on one machine gates a run on another (a faster machine shortens both).
Its file name sorts first, so it runs before the benchmarks it calibrates.
"""

from __future__ import annotations

import torch

N = 1024


def test_calibration_matmul(benchmark):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(N, N, generator=gen)
    b = torch.randn(N, N, generator=gen)
    out = benchmark(torch.mm, a, b)
    assert out.shape == (N, N) and torch.isfinite(out).all()
