"""Networks from the literature, so aebench's numbers can be set beside published ones.

``bench-conv`` — the ConvNets of the generative-autoencoder benchmark of Chadebec et al. (2022,
"Pythae: Unifying generative autoencoders in Python — a benchmarking use case", NeurIPS
Datasets & Benchmarks; the same nets for every model), written from their layer
descriptions, one per image size:

* encoder, every size: four 4×4 stride-2 convolutions of 128, 256, 512 and 1024 channels, each
  followed by batch norm and ReLU, then one linear layer to the code (a VAE's to mean and
  log-variance);
* decoder, 1×28×28 (MNIST): linear to 1024×4×4, then 3×3 stride-2 transposed convolutions to
  512 (→ 7×7) and 256 (→ 14×14) channels with batch norm and ReLU, and one to the image
  (→ 28×28). 17.2 M parameters as a 16-d VAE (test-checked);
* decoder, 3×32×32 (CIFAR-10): linear to 1024×8×8, 4×4 stride-2 transposed convolutions to
  512 (→ 16×16) and 256 (→ 33×33, with output padding 1, as published), batch norm and ReLU,
  then a 4×4 stride-1 transposed convolution with padding 2 to the image (→ 32×32);
* decoder, 3×64×64 (CelebA): linear to 1024×8×8, 5×5 stride-2 transposed convolutions to
  512 (→ 15), 256 (→ 31) and 128 (→ 62) channels with batch norm and ReLU, then a 5×5
  stride-1 one to the image (→ 64×64).

Differences of ``bench-conv`` from its source, and why: decoders return logits (aebench's models
apply the sigmoid, so the Bernoulli likelihood is computed stably from logits); the VAE-GAN
discriminator reuses the encoder's four convolutions without batch norm, with LeakyReLU(0.2)
as aebench's other discriminators (the source alternates ReLU and tanh).

``burda2015-mlp`` — the one-stochastic-layer network of Burda, Grosse & Salakhutdinov (2016,
"Importance Weighted Autoencoders", ICLR, section 5): two deterministic hidden layers of 200
tanh units each way (784-200-200-50 for MNIST's 784 pixels and a 50-d code; the code size comes
from the suite's ``latent_dim``), a linear layer to the Gaussian's mean and log-variance, and a
linear layer to Bernoulli logits. The VAE-GAN discriminator, which the paper has no use for,
is the encoder's two tanh layers. 0.43 M parameters as a 50-d VAE (test-checked). The encoder
outputs the log-variance where the paper applies exp to get the variance: the same family of
posteriors. PyTorch's default initialisation, where the paper uses Glorot & Bengio's.

``ghosh2020-conv`` — the networks of Ghosh et al. (2020, "From Variational to Deterministic
Autoencoders", ICLR; Table 1), as their official code builds them (its appendix C was not
reachable here): four stride-2 convolutions of 128, 256, 512 and 1024 channels with batch norm
and ReLU (TensorFlow's 'same' padding, its extra pixel after), flattened, one linear layer to
the code; the decoder is one linear
layer to 1024×8×8, stride-2 transposed convolutions with batch norm and ReLU (512, 256 for
32×32 images — MNIST padded to 32×32, CIFAR-10; 512, 256, 128 for 64×64 CelebA), and a stride-1
one to the image. Kernels are 4×4 at 32×32 and 5×5 at 64×64. The transposed convolutions
double the size with PyTorch's padding (at 5×5 TF's 'same' may place the kernel one pixel
differently: the same family of networks). The last layer is written as a
stride-1 convolution with 'same' padding: a stride-1 transposed convolution is the same map
with a flipped kernel, and an even kernel needs TensorFlow's asymmetric 'same' padding.
22.8 M parameters as a 16-d VAE on MNIST-32 (test-checked).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from aebench.core.errors import UsageError

CHANNELS = (128, 256, 512, 1024)
#: (C, H, W) → decoder layout: start grid, then per transposed conv (out, kernel, stride,
#: padding, output_padding); the last one maps to the image's channels.
_DECODERS: dict[tuple[int, int], tuple[int, list[tuple[int, int, int, int, int]]]] = {
    (28, 28): (4, [(512, 3, 2, 1, 0), (256, 3, 2, 1, 1), (0, 3, 2, 1, 1)]),
    (32, 32): (8, [(512, 4, 2, 1, 0), (256, 4, 2, 1, 1), (0, 4, 1, 2, 0)]),
    (64, 64): (8, [(512, 5, 2, 2, 0), (256, 5, 2, 1, 0), (128, 5, 2, 2, 1), (0, 5, 1, 1, 0)]),
}


def _sizes(image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    c, h, w = image_shape
    if (h, w) not in _DECODERS:
        sizes = ", ".join(f"{a}x{b}" for a, b in _DECODERS)
        raise UsageError(f"the bench-conv architecture is defined for {sizes} images, got {h}x{w}")
    return c, h, w


def conv_trunk(channels: int, batch_norm: bool = True) -> nn.Sequential:
    """The four 4×4 stride-2 convolutions (128 → 1024 channels), flattened."""
    layers: list[nn.Module] = []
    for out in CHANNELS:
        layers.append(nn.Conv2d(channels, out, 4, 2, 1))
        layers += [nn.BatchNorm2d(out), nn.ReLU()] if batch_norm else [nn.LeakyReLU(0.2)]
        channels = out
    return nn.Sequential(*layers, nn.Flatten())


def trunk_features(image_shape: tuple[int, int, int]) -> int:
    """Width of :func:`conv_trunk`'s output for images of this shape."""
    _, h, w = _sizes(image_shape)
    for _ in CHANNELS:
        h, w = (h + 2 - 4) // 2 + 1, (w + 2 - 4) // 2 + 1
    return CHANNELS[-1] * h * w


def encoder(image_shape: tuple[int, int, int], out_dim: int) -> nn.Module:
    c, _, _ = _sizes(image_shape)
    return nn.Sequential(conv_trunk(c), nn.Linear(trunk_features(image_shape), out_dim))


class Decoder(nn.Module):
    """Latent → linear → 1024 × s × s → transposed convolutions → (C, H, W) logits."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        c, h, w = _sizes(image_shape)
        start, layers = _DECODERS[(h, w)]
        self.start = (CHANNELS[-1], start, start)
        self.fc = nn.Linear(latent_dim, math.prod(self.start))
        blocks: list[nn.Module] = []
        channels = CHANNELS[-1]
        for i, (out, k, s, p, op) in enumerate(layers):
            last = i == len(layers) - 1
            out = c if last else out
            blocks.append(nn.ConvTranspose2d(channels, out, k, s, p, output_padding=op))
            if not last:
                blocks += [nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(z.shape[0], *self.start))


#: Burda et al. (2016)'s deterministic layers: two of 200 tanh units, each way
BURDA_HIDDEN = (200, 200)


def tanh_mlp(sizes: tuple[int, ...], act_last: bool = False) -> nn.Sequential:
    """Linear layers with tanh between them (and after the last one if ``act_last``)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or act_last:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def burda_encoder(image_shape: tuple[int, int, int], out_dim: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), tanh_mlp((math.prod(image_shape), *BURDA_HIDDEN, out_dim)))


class BurdaDecoder(nn.Module):
    """Code → 200 → 200 (tanh) → pixel logits, reshaped to the image."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.image_shape = image_shape
        self.net = tanh_mlp((latent_dim, *BURDA_HIDDEN, math.prod(image_shape)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)


#: Ghosh et al. (2020)'s nets per image size: kernel, decoder channels (start grid is 8×8)
_GHOSH = {(32, 32): (4, (512, 256)), (64, 64): (5, (512, 256, 128))}


def _ghosh(image_shape: tuple[int, int, int]) -> tuple[int, tuple[int, ...]]:
    _, h, w = image_shape
    if (h, w) not in _GHOSH:
        sizes = ", ".join(f"{a}x{b}" for a, b in _GHOSH)
        raise UsageError(
            f"the ghosh2020-conv architecture is defined for {sizes} images, got {h}x{w}"
        )
    return _GHOSH[(h, w)]


def ghosh_trunk(image_shape: tuple[int, int, int], batch_norm: bool = True) -> nn.Sequential:
    """Four stride-2 convolutions, 128 → 1024 channels, 'same' padding, flattened."""
    kernel, _ = _ghosh(image_shape)
    lo = (kernel - 2) // 2  # TF's 'same' at stride 2 pads k - 2 in all, the extra one after
    channels, layers = image_shape[0], []
    for out in CHANNELS:
        layers += [nn.ZeroPad2d((lo, kernel - 2 - lo) * 2), nn.Conv2d(channels, out, kernel, 2)]
        layers += [nn.BatchNorm2d(out), nn.ReLU()] if batch_norm else [nn.LeakyReLU(0.2)]
        channels = out
    return nn.Sequential(*layers, nn.Flatten())


def ghosh_features(image_shape: tuple[int, int, int]) -> int:
    _ghosh(image_shape)
    return CHANNELS[-1] * (image_shape[1] // 16) * (image_shape[2] // 16)


def ghosh_encoder(image_shape: tuple[int, int, int], out_dim: int) -> nn.Module:
    return nn.Sequential(ghosh_trunk(image_shape), nn.Linear(ghosh_features(image_shape), out_dim))


class GhoshDecoder(nn.Module):
    """Code → linear → 1024 × 8 × 8 → stride-2 transposed convs → stride-1 conv → logits."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        kernel, widths = _ghosh(image_shape)
        self.start = (CHANNELS[-1], 8, 8)
        self.fc = nn.Linear(latent_dim, math.prod(self.start))
        blocks: list[nn.Module] = []
        channels = CHANNELS[-1]
        for out in widths:  # doubles the size: (H - 1)·2 - 2p + k + op = 2H
            pad = (kernel - 1) // 2
            blocks += [
                nn.ConvTranspose2d(channels, out, kernel, 2, pad, output_padding=kernel % 2),
                nn.BatchNorm2d(out),
                nn.ReLU(),
            ]
            channels = out
        lo = (kernel - 1) // 2  # 'same' padding, TF's way: the extra pixel on the far side
        blocks += [
            nn.ZeroPad2d((lo, kernel - 1 - lo) * 2),
            nn.Conv2d(channels, image_shape[0], kernel),
        ]
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(z.shape[0], *self.start))


Shape = tuple[int, int, int]


@dataclass(frozen=True)
class LiteratureNet:
    """One paper's networks, as :mod:`aebench.models.backbones` builds them under its name."""

    check: Callable[[Shape], object]  #: raises UsageError for image sizes it is not defined for
    encoder: Callable[[Shape, int], nn.Module]  #: (image shape, output size)
    decoder: Callable[[int, Shape], nn.Module]  #: (latent size, image shape)
    #: the VAE-GAN discriminator's feature layers and their width, for an image shape
    trunk: Callable[[Shape], tuple[nn.Module, int]]


def _burda_trunk(shape: Shape) -> tuple[nn.Module, int]:
    layers = tanh_mlp((math.prod(shape), *BURDA_HIDDEN), act_last=True)
    return nn.Sequential(nn.Flatten(), layers), BURDA_HIDDEN[-1]


#: arch name → networks; every entry is an architecture of ``aebench.models.backbones.ARCHS``
NETS: dict[str, LiteratureNet] = {
    "bench-conv": LiteratureNet(
        trunk_features, encoder, Decoder,
        lambda s: (conv_trunk(s[0], batch_norm=False), trunk_features(s)),
    ),
    "burda2015-mlp": LiteratureNet(lambda s: None, burda_encoder, BurdaDecoder, _burda_trunk),
    "ghosh2020-conv": LiteratureNet(
        ghosh_features, ghosh_encoder, GhoshDecoder,
        lambda s: (ghosh_trunk(s, batch_norm=False), ghosh_features(s)),
    ),
}  # fmt: skip
