"""Discriminators on codes, shared by the adversarial families (AAE, FactorVAE, WAE-GAN), and
the dimension-wise permutation FactorVAE's discriminator is trained against.

A code-space adversary is a plain MLP: the three papers use fully connected nets with ReLU or
leaky-ReLU units, of different depths and widths (each model's config states its own), so one
class with those as arguments serves all three.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce_logits


class CodeCritic(nn.Module):
    """An MLP from codes of ``latent_dim`` to ``outputs`` logits: one linear layer and an
    activation per width in ``hidden`` (ReLU, or leaky ReLU when ``negative_slope`` > 0), then
    a linear layer to the logits."""

    def __init__(
        self,
        latent_dim: int,
        hidden: Sequence[int],
        outputs: int = 1,
        negative_slope: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for size in hidden:
            act = nn.LeakyReLU(negative_slope) if negative_slope > 0 else nn.ReLU()
            layers += [nn.Linear(width, int(size)), act]
            width = int(size)
        layers.append(nn.Linear(width, outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(N, outputs)``."""
        return self.net(z)


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Each column of ``z`` (N, d) shuffled by its own random permutation of the batch: a
    sample from the product of the marginals Π_j q(z_j) (Kim & Mnih 2018, Algorithm 1). One
    ``argsort`` of uniform noise gives all d permutations at once, without a loop over
    dimensions."""
    order = torch.rand(z.shape, device=z.device).argsort(dim=0)
    return z.gather(0, order)


def discriminate(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A one-logit critic's GAN loss, −log D(real) − log(1 − D(fake)) averaged per side, and
    its accuracy over both sides (logit > 0 called "real"; a tensor, so reading it never syncs
    the host inside a training step)."""
    lr, lf = critic(real), critic(fake)
    loss = bce_logits(lr, torch.ones_like(lr)) + bce_logits(lf, torch.zeros_like(lf))
    hits = (lr > 0).float().sum() + (lf <= 0).float().sum()
    return loss, hits / (lr.numel() + lf.numel())


def fool(critic: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """The generator's non-saturating GAN loss −log D(fake) (Goodfellow et al. 2014)."""
    logits = critic(fake)
    return bce_logits(logits, torch.ones_like(logits))
