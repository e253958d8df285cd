"""Sharpness: how blurry generated or reconstructed images are, relative to real ones.

Blur is the best-known failure of VAEs, yet FID mixes it with everything else. Two direct
statistics, each reported as a ratio to the same statistic on real test images (1.0 = as sharp
as the data, < 1 blurrier, > 1 noisier):

* variance of the Laplacian per image (Pech-Pacheco et al. 2000), averaged over images;
* the share of spectral energy above a fixed radial frequency (``cutoff`` cycles per pixel,
  0.5 = Nyquist), averaged over images.

Colour images are reduced to their channel mean first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

#: cycles per pixel (Nyquist = 0.5). Above ~0.2 a 28×28 digit holds so little energy that the
#: share of heavily blurred images sits on a numerical floor and stops ordering blur levels.
HF_CUTOFF = 0.15

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def _grey(images: torch.Tensor) -> torch.Tensor:
    x = images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
    return x.mean(1, keepdim=True)


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """Variance of the 3×3 Laplacian response (valid region) per image: (N,)."""
    kernel = _LAPLACIAN.to(images.device).view(1, 1, 3, 3)
    response = F.conv2d(_grey(images), kernel)
    return response.flatten(1).double().var(1, unbiased=False)


def high_frequency_share(images: torch.Tensor, cutoff: float = HF_CUTOFF) -> torch.Tensor:
    """Share of each image's spectral energy (DC excluded) above radial frequency ``cutoff``."""
    x = _grey(images).squeeze(1).double()
    x = x - x.mean((-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().pow(2)
    fy = torch.fft.fftfreq(x.shape[-2], dtype=torch.float64, device=x.device)
    fx = torch.fft.fftfreq(x.shape[-1], dtype=torch.float64, device=x.device)
    radius = (fy[:, None].pow(2) + fx[None, :].pow(2)).sqrt()
    total = power.sum((-2, -1))
    high = (power * (radius > cutoff)).sum((-2, -1))
    return torch.where(total > 0, high / total.clamp_min(1e-300), torch.zeros_like(total))


def _batched_mean(
    fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int = 1000
) -> float:
    total = 0.0
    for start in range(0, images.shape[0], batch_size):
        total += float(fn(images[start : start + batch_size]).sum())
    return total / max(images.shape[0], 1)


def sharpness_ratio(images: torch.Tensor, real: torch.Tensor) -> float:
    """Mean Laplacian variance of ``images`` over that of ``real`` (1.0 = as sharp as real)."""
    return _batched_mean(laplacian_variance, images) / _batched_mean(laplacian_variance, real)


def high_frequency_ratio(
    images: torch.Tensor, real: torch.Tensor, cutoff: float = HF_CUTOFF
) -> float:
    """Mean high-frequency energy share of ``images`` over that of ``real``."""

    def share(x: torch.Tensor) -> torch.Tensor:
        return high_frequency_share(x, cutoff)

    return _batched_mean(share, images) / _batched_mean(share, real)
