"""The shared encoder / decoder / discriminator networks.

Every built-in model is assembled from these builders so that a comparison between models
compares objectives, not network sizes. Two families:

* ``mlp``  — fully connected, ``hidden`` units per layer (default 512 → 256).
* ``conv`` — DCGAN-style: stride-2 4×4 convolutions down, doubling the channels each time, a
  linear layer to the code; the decoder mirrors it with transposed convolutions. Two of them
  for images up to 63 pixels (1×28×28, 3×32×32: H/4 × W/4), one more per doubling of the size
  beyond (3 for 64×64, 4 for 128×128), so the last feature map stays 7–15 pixels wide. Needs
  H and W divisible by 2^depth.
* ``bench-conv`` — the benchmark ConvNets of Chadebec et al. (2022) for 28×28, 32×32 and
  64×64 images (:mod:`aebench.models.literature_nets`).
* ``burda2015-mlp`` — Burda et al. (2016)'s 784-200-200-50 tanh MLP, and ``ghosh2020-conv`` —
  Ghosh et al. (2020)'s ConvNets for 32×32 and 64×64 images (:mod:`aebench.models.literature_nets`).

Decoders return *logits*; models turn them into images with a sigmoid.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from aebench.core.errors import UsageError
from aebench.models import literature_nets

ARCHS = ("mlp", "conv", *literature_nets.NETS)

ImageShape = tuple[int, int, int]


def _check(arch: str, image_shape: Sequence[int]) -> ImageShape:
    if arch not in ARCHS:
        raise UsageError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHS)}")
    if len(image_shape) != 3:
        raise UsageError(f"image shape must be (C, H, W), got {tuple(image_shape)}")
    c, h, w = (int(v) for v in image_shape)
    step = 2 ** conv_depth(h, w)
    if arch == "conv" and (h % step or w % step):
        raise UsageError(
            f"the conv architecture needs H and W divisible by {step} for {h}x{w} images"
        )
    if arch in literature_nets.NETS:
        literature_nets.NETS[arch].check((c, h, w))  # refuses sizes it is not defined for
    return c, h, w


def conv_depth(h: int, w: int) -> int:
    """Stride-2 convolutions of the ``conv`` family: 2, plus one per doubling beyond 63 px."""
    depth = 2
    while min(h, w) // 2**depth >= 16:
        depth += 1
    return depth


def _mlp(sizes: Sequence[int], act_last: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or act_last:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class ConvTrunk(nn.Module):
    """``depth`` stride-2 convolutions (width, 2·width, 4·width, …) and a flatten:
    (C, H, W) → ``width·2^(depth-1)`` × H/2^depth × W/2^depth features."""

    def __init__(
        self, channels: int, width: int, slope: float = 0.2, depth: int = 2, flatten: bool = True
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 4, 2, 1), nn.LeakyReLU(slope)]
            channels = out
        self.net = nn.Sequential(*layers, *([nn.Flatten()] if flatten else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _trunk_features(image_shape: ImageShape, width: int) -> int:
    _, h, w = image_shape
    depth = conv_depth(h, w)
    return width * 2 ** (depth - 1) * (h // 2**depth) * (w // 2**depth)


def _upsampling(channels: int, out_channels: int, depth: int) -> list[nn.Module]:
    """``depth`` stride-2 4×4 transposed convolutions halving the channels (ReLU between),
    the last to ``out_channels`` logits: the mirror of :class:`ConvTrunk`."""
    layers: list[nn.Module] = []
    for i in range(depth):
        last = i == depth - 1
        out = out_channels if last else channels // 2
        layers.append(nn.ConvTranspose2d(channels, out, 4, 2, 1))
        if not last:
            layers.append(nn.ReLU())
        channels = out
    return layers


class ConvDecoder(nn.Module):
    """Latent → linear → (width·2^(depth-1), H/2^depth, W/2^depth) → ``depth`` transposed
    convolutions, halving the channels → (C, H, W) logits; mirrors :class:`ConvTrunk`."""

    def __init__(self, latent_dim: int, image_shape: ImageShape, width: int) -> None:
        super().__init__()
        c, h, w = image_shape
        depth = conv_depth(h, w)
        channels = width * 2 ** (depth - 1)
        self.start = (channels, h // 2**depth, w // 2**depth)
        self.fc = nn.Sequential(nn.Linear(latent_dim, math.prod(self.start)), nn.ReLU())
        self.net = nn.Sequential(*_upsampling(channels, c, depth))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(z.shape[0], *self.start))


def grid_shape(image_shape: Sequence[int]) -> tuple[int, int]:
    """The code grid of the ``conv`` family for images of ``image_shape``: H/2^depth × W/2^depth
    (7 × 7 for 28 × 28 images)."""
    _, h, w = (int(v) for v in image_shape)
    depth = conv_depth(h, w)
    return h // 2**depth, w // 2**depth


def build_grid_encoder(image_shape: Sequence[int], code_channels: int, width: int) -> nn.Module:
    """The ``conv`` encoder without its flatten and linear layer: images → a grid of
    ``code_channels``-dimensional codes (a 1×1 convolution of the last feature map), for models
    whose code is spatial (VQ-VAE)."""
    c, h, w = _check("conv", image_shape)
    depth = conv_depth(h, w)
    trunk = ConvTrunk(c, width, depth=depth, flatten=False)
    return nn.Sequential(trunk, nn.Conv2d(width * 2 ** (depth - 1), code_channels, 1))


class GridDecoder(nn.Module):
    """A code grid → a 3×3 convolution to the ``conv`` decoder's widest feature map → its
    transposed convolutions → image logits; mirrors :func:`build_grid_encoder`."""

    def __init__(self, code_channels: int, image_shape: ImageShape, width: int) -> None:
        super().__init__()
        c, h, w = _check("conv", image_shape)
        depth = conv_depth(h, w)
        channels = width * 2 ** (depth - 1)
        entry = [nn.Conv2d(code_channels, channels, 3, 1, 1), nn.ReLU()]
        self.net = nn.Sequential(*entry, *_upsampling(channels, c, depth))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


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
    if arch in literature_nets.NETS:
        return literature_nets.NETS[arch].encoder(shape, out_dim)
    trunk = ConvTrunk(c, width, depth=conv_depth(h, w))
    return nn.Sequential(trunk, nn.Linear(_trunk_features(shape, width), out_dim))


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
    if arch in literature_nets.NETS:
        return literature_nets.NETS[arch].decoder(latent_dim, shape)
    return ConvDecoder(latent_dim, shape, width)


def encoder_and_decoder(
    cfg: Any,
    encoder: nn.Module | None = None,
    decoder: nn.Module | None = None,
    code_outputs: int | None = None,
) -> tuple[nn.Module, nn.Module]:
    """A model's two networks: those it was given, else the shared backbones its config
    (``arch``, ``image_shape``, ``latent_dim``, ``width``, ``hidden``) asks for. The encoder
    outputs ``code_outputs`` numbers per image (default ``latent_dim``; a VAE asks for twice
    that: mean and log-variance). The encoder is built first, so the seed fixes both alike."""
    width = cfg.latent_dim if code_outputs is None else code_outputs
    encoder = encoder or build_encoder(cfg.arch, cfg.image_shape, width, cfg.width, cfg.hidden)
    decoder = decoder or build_decoder(
        cfg.arch, cfg.image_shape, cfg.latent_dim, cfg.width, cfg.hidden
    )
    return encoder, decoder


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
        elif arch in literature_nets.NETS:
            self.features, feat_dim = literature_nets.NETS[arch].trunk((c, h, w))
        else:
            self.features = ConvTrunk(c, width, depth=conv_depth(h, w))
            feat_dim = _trunk_features((c, h, w), width)
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
