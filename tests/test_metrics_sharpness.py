"""Sharpness ratios: 1.0 for the real images, far below 1 for blurred copies, monotone in σ."""

from __future__ import annotations

import itertools

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from aebench.metrics.sharpness import (
    high_frequency_ratio,
    high_frequency_share,
    laplacian_variance,
    sharpness_ratio,
)


@pytest.fixture(scope="module")
def real(mnist5k) -> torch.Tensor:
    return mnist5k.test_x.float() / 255


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = 2 * int(3 * sigma + 0.999) + 1
    return gaussian_blur(x, [k, k], [sigma, sigma])


def test_real_images_have_ratio_one(real, mnist5k):
    assert sharpness_ratio(real, real) == 1.0
    assert high_frequency_ratio(real, real) == 1.0
    assert sharpness_ratio(mnist5k.test_x, real) == pytest.approx(1.0)  # uint8 input too


def test_blur_halves_sharpness_and_is_monotone(real):
    ratios = [sharpness_ratio(_blur(real, s), real) for s in (0.5, 1.0, 1.5, 2.0)]
    hf = [high_frequency_ratio(_blur(real, s), real) for s in (0.5, 1.0, 1.5, 2.0)]
    assert ratios[1] < 0.5
    assert all(a > b for a, b in itertools.pairwise(ratios))
    assert hf[1] < 0.5
    assert all(a > b for a, b in itertools.pairwise(hf))


def test_noise_is_sharper_than_data(real):
    noise = torch.rand(real.shape, generator=torch.Generator().manual_seed(0))
    assert sharpness_ratio(noise, real) > 1.0
    assert high_frequency_ratio(noise, real) > 1.0


def test_statistics_per_image_and_constant_images():
    flat = torch.full((3, 1, 8, 8), 0.5)
    assert laplacian_variance(flat).tolist() == [0.0, 0.0, 0.0]
    assert high_frequency_share(flat).tolist() == [0.0, 0.0, 0.0]
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2
    share = high_frequency_share(checker.float().view(1, 1, 8, 8))
    assert share.item() == pytest.approx(1.0)  # all energy at Nyquist


def test_colour_images_are_reduced_to_grey():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    grey = x.mean(1, keepdim=True)
    assert torch.allclose(laplacian_variance(x), laplacian_variance(grey))
