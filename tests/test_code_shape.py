"""Codes of any shape: a model with a spatial code grid is served by the samplers that apply to
it, refused in one line by those that need flat codes, and left out of the latent map."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from aebench import models
from aebench.core.errors import UsageError
from aebench.data import ImageData
from aebench.metrics import samplers
from aebench.metrics.context import EvalContext
from aebench.metrics.options import MetricOptions
from aebench.models.base import GenerativeAutoencoder

GRID = (2, 7, 7)  #: channels, height, width of one image's code


class GridAE(GenerativeAutoencoder):
    """A toy autoencoder whose code is a 2 × 7 × 7 grid (as a VQ-VAE's is), no sample()."""

    samplers = ("normal",)
    default_sampler = "normal"

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(1, GRID[0], 4, stride=4)
        self.up = nn.ConvTranspose2d(GRID[0], 1, 4, stride=4)

    @property
    def code_shape(self) -> tuple[int, ...]:
        return GRID

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(z)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = (torch.sigmoid(self.decode_logits(self.encode(x))) - x).pow(2).mean()
        return {"loss": loss}


def _data() -> ImageData:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (32, 1, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.arange(32) % 10
    return ImageData("grid-toy", x, y, x, y)


def test_flat_code_samplers_say_why_they_do_not_apply() -> None:
    model = GridAE()
    for name in ("gaussian", "gmm"):
        why = samplers.problem(name, model)
        assert why is not None and "flat codes" in why and str(GRID) in why and "\n" not in why
    assert "sample()" in samplers.problem("prior", model)
    assert samplers.problem("normal", model) is None


def test_normal_sampler_draws_codes_in_the_grids_shape() -> None:
    """N(0, I) draws reshaped to the grid decode to the same images as the same draws passed
    to the decoder by hand."""
    model = GridAE().eval()
    n = 5
    images = samplers.get("normal")(model, lambda: None, n, torch.Generator().manual_seed(3))
    z = torch.randn(n, math.prod(GRID), generator=torch.Generator().manual_seed(3),
                    dtype=torch.float64)  # fmt: skip
    with torch.no_grad():
        expected = model.decode(z.float().reshape(n, *GRID))
    assert images.shape == (n, 1, 28, 28)
    torch.testing.assert_close(images, expected)


def test_evaluation_keeps_the_samplers_that_apply_and_refuses_one_that_does_not() -> None:
    model = GridAE()
    model.samplers = ("normal", "gmm")  # a declaration the capability check filters
    ctx = EvalContext(model, _data(), MetricOptions(n_samples=16))
    assert ctx.samplers() == ("normal",)
    chosen = EvalContext(model, _data(), MetricOptions(n_samples=16, sampler="gaussian"))
    with pytest.raises(UsageError, match="needs flat codes"):
        chosen.samplers()


def test_a_flat_model_reports_its_latent_dim_as_its_code_shape() -> None:
    assert models.create("vae", latent_dim=7).code_shape == (7,)
    assert samplers.code_shape(models.create("ae", latent_dim=3)) == (3,)


def test_a_sampler_that_returns_no_images_is_one_line_naming_it() -> None:
    """A plugin's sampler is the user's code: what it returns is checked, not traced later."""
    draws = {"none": lambda *_: None, "short": lambda model, codes, n, g: torch.zeros(n - 1, 1)}
    model = models.create("ae", latent_dim=3)
    for name, draw in draws.items():
        sampler = samplers.Sampler(draw, name=f"my-{name}")
        with pytest.raises(UsageError, match=f"sampler 'my-{name}' returned .* not a tensor of 4"):
            sampler(model, lambda: torch.zeros(8, 3), 4)
    good = samplers.Sampler(lambda model, codes, n, g: torch.zeros(n, 1, 28, 28), name="my-ok")
    assert good(model, lambda: None, 4).shape == (4, 1, 28, 28)
