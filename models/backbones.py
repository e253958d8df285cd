"""The shared encoder / decoder / discriminator networks.

Every built-in model is assembled from these builders so that a comparison between models
compares objectives, not network sizes. Two families:

* ``mlp``  — fully connected, ``hidden`` units per layer (default 512 → 256).
* ``conv`` — DCGAN-style: two stride-2 4×4 convolutions down (H/4 × W/4), a linear layer to the
  code; the decoder mirrors it with transposed convolutions. Needs H and W divisible by 4
  (1×28×28 and 3×32×32 both are).

Decoders return *logits*; models turn them into images with a sigmoid.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from bench.errors import UsageError

ARCHS = ("mlp", "conv")

ImageShape = tuple[int, int, int]


def _check(arch: str, image_shape: Sequence[int]) -> ImageShape:
    if arch not in ARCHS:
        raise UsageError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHS)}")
    if len(image_shape) != 3:
        raise UsageError(f"image shape must be (C, H, W), got {tuple(image_shape)}")
    c, h, w = (int(v) for v in image_shape)
    if arch == "conv" and (h % 4 or w % 4):
        raise UsageError(f"the conv architecture needs H and W divisible by 4, got {h}x{w}")
    return c, h, w


def _mlp(sizes: Sequence[int], act_last: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or act_last:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class ConvTrunk(nn.Module):
    """Two stride-2 convolutions and a flatten: (C, H, W) → ``2·width`` × H/4 × W/4 features."""

    def __init__(self, channels: int, width: int, slope: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1),
            nn.LeakyReLU(slope),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.LeakyReLU(slope),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """Latent → linear → (2·width, H/4, W/4) → two transposed convolutions → (C, H, W) logits."""

    def __init__(self, latent_dim: int, image_shape: ImageShape, width: int) -> None:
        super().__init__()
        c, h, w = image_shape
        self.start = (2 * width, h // 4, w // 4)
        self.fc = nn.Sequential(nn.Linear(latent_dim, math.prod(self.start)), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, c, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(z.shape[0], *self.start))


class MLPDecoder(nn.Module):
    """Latent → hidden layers → C·H·W logits, reshaped to an image."""

    def __init__(self, latent_dim: int, image_shape: ImageShape, hidden: Sequence[int]) -> None:
        super().__init__()
        self.image_shape = image_shape
        self.net = _mlp([latent_dim, *reversed(hidden), math.prod(image_shape)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)


def build_encoder(
    arch: str,
    image_shape: Sequence[int],
    out_dim: int,
    width: int = 32,
    hidden: Sequence[int] = (512, 256),
) -> nn.Module:
    """An image → ``out_dim`` vector network (a VAE asks for 2·latent: mean and log-variance)."""
    shape = _check(arch, image_shape)
    c, h, w = shape
    if arch == "mlp":
        return nn.Sequential(nn.Flatten(), _mlp([c * h * w, *hidden, out_dim]))
    return nn.Sequential(ConvTrunk(c, width), nn.Linear(2 * width * (h // 4) * (w // 4), out_dim))


def build_decoder(
    arch: str,
    image_shape: Sequence[int],
    latent_dim: int,
    width: int = 32,
    hidden: Sequence[int] = (512, 256),
) -> nn.Module:
    """A latent → image-logits network of the same family and size as :func:`build_encoder`."""
    shape = _check(arch, image_shape)
    if arch == "mlp":
        return MLPDecoder(latent_dim, shape, hidden)
    return ConvDecoder(latent_dim, shape, width)


class Discriminator(nn.Module):
    """Real-vs-generated classifier whose last hidden layer doubles as a feature space.

    ``forward`` returns ``(features, logit)``; VAE-GAN measures reconstruction error on the
    features (Larsen et al. 2016, "learned similarity"). Two optional regularisers keep the
    discriminator from winning outright against a generator that also minimises a pixel loss:

    * ``dropout`` — dropout between the features and the logit (as in Salimans et al. 2016's
      semi-supervised GAN discriminator). It sits *after* the returned features, so the
      feature-space reconstruction is measured on the clean features.
    * ``spectral_norm`` — spectral normalisation of every weight (Miyato et al. 2018), which
      bounds the discriminator's Lipschitz constant and hence the size of its gradients.
    """

    def __init__(
        self,
        arch: str,
        image_shape: Sequence[int],
        width: int = 32,
        hidden: Sequence[int] = (512, 256),
        dropout: float = 0.0,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        c, h, w = _check(arch, image_shape)
        if arch == "mlp":
            self.features = nn.Sequential(nn.Flatten(), _mlp([c * h * w, *hidden], act_last=True))
            feat_dim = hidden[-1]
        else:
            self.features = ConvTrunk(c, width)
            feat_dim = 2 * width * (h // 4) * (w // 4)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feat_dim, 1)
        if spectral_norm:
            for module in list(self.modules()):
                if isinstance(module, nn.Linear | nn.Conv2d):
                    nn.utils.parametrizations.spectral_norm(module)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.head(self.dropout(f)).squeeze(1)


def build_discriminator(
    arch: str, image_shape: Sequence[int], **kwargs: int | float | bool | Sequence[int]
) -> Discriminator:
    """The discriminator matching :func:`build_encoder`'s family."""
    return Discriminator(arch, image_shape, **kwargs)  # type: ignore[arg-type]
