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

Differences from the source, and why: decoders return logits (aebench's models apply the
sigmoid, so the Bernoulli likelihood is computed stably from logits); the VAE-GAN
discriminator reuses the encoder's four convolutions without batch norm, with LeakyReLU(0.2)
as aebench's other discriminators (the source alternates ReLU and tanh).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.errors import UsageError

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
