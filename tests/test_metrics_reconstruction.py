"""Reconstruction metrics against hand computations; accumulation over batches."""

from __future__ import annotations

import math

import pytest
import torch

from aebench.metrics.reconstruction import (
    ReconBCE,
    reconstruction_collection,
    reconstruction_metrics,
)


def test_perfect_reconstruction(mnist5k):
    values, kept = reconstruction_metrics(
        lambda x: x, mnist5k.test_x[:300], batch_size=128, keep=50
    )
    assert values["recon_mse"] == 0.0
    assert values["ssim"] == pytest.approx(1.0)
    assert kept.shape == (50, 1, 28, 28)
    # BCE of x against itself is the images' binary entropy, well below a blurred guess
    mean_guess, _ = reconstruction_metrics(lambda x: torch.full_like(x, 0.13), mnist5k.test_x[:300])
    assert values["recon_bce"] < mean_guess["recon_bce"]


def test_values_match_hand_computation():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 12, 12, generator=gen)
    x_hat = (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0.01, 0.99)
    metrics = reconstruction_collection()
    for start in range(0, 40, 7):  # uneven batches
        metrics.update(x_hat[start : start + 7], x[start : start + 7])
    values = {k: float(v) for k, v in metrics.compute().items()}
    mse_per_image = (x_hat - x).pow(2).flatten(1).mean(1)
    assert values["recon_mse"] == pytest.approx(float(mse_per_image.mean()), rel=1e-5)
    psnr = (10 * torch.log10(1 / mse_per_image)).mean()
    assert values["psnr"] == pytest.approx(float(psnr), rel=1e-5)
    p, x = x_hat.double(), x.double()
    bce = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1).mean()
    assert values["recon_bce"] == pytest.approx(float(bce), rel=1e-4)


def test_bce_is_finite_for_saturated_pixels():
    metric = ReconBCE()
    metric.update(torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4))
    value = float(metric.compute())
    assert math.isfinite(value) and value == pytest.approx(16 * 100)
    metric.reset()
    metric.update(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
    assert float(metric.compute()) == pytest.approx(0.0)
