"""The two-stage VAE's second stage (Dai & Wipf 2019, section 4): a VAE on the first stage's
codes, u → z, whose own Gaussian decoder learns its standard deviation γ_z.

Both of its networks are ``depth`` fully connected ReLU layers of ``width`` units whose output is
concatenated with their input before the last linear layer, as in the authors' code
(``build_encoder2`` / ``build_decoder2``: 3 × 1024). The loss, per code and averaged over the
batch, is KL(q(u|z) ‖ N(0, I)) + Σ_d [(z_d − ẑ_d)² / (2γ_z²) + log γ_z + ½ log 2π].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aebench.models.base import GenerativeAutoencoder, Phase
from aebench.models.gaussian import kl_to_standard_normal

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_nll(target: torch.Tensor, mean: torch.Tensor, log_gamma: torch.Tensor) -> torch.Tensor:
    """Σ over all but the batch dimension of −log N(target | mean, γ²), γ = exp(log_gamma)."""
    sq = ((target - mean) / log_gamma.exp()).pow(2).flatten(1).sum(1)
    return 0.5 * sq + target[0].numel() * (log_gamma + HALF_LOG_2PI)


class SkipMLP(nn.Module):
    """``depth`` ReLU layers of ``width``, then a linear layer on [input, features]."""

    def __init__(self, inputs: int, outputs: int, depth: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = inputs
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(inputs + width, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([x, self.body(x)], dim=1))


class SecondStage(GenerativeAutoencoder):
    """The second VAE, trained by the harness as a stage on codes z of the first."""

    def __init__(self, latent_dim: int, depth: int, width: int, lr: float, gamma_lr: float) -> None:
        super().__init__(latent_dim=latent_dim, depth=depth, width=width, lr=lr, gamma_lr=gamma_lr)
        self.latent_dim, self.lr, self.gamma_lr = latent_dim, lr, gamma_lr
        self.encoder = SkipMLP(latent_dim, 2 * latent_dim, depth, width)
        self.decoder = SkipMLP(latent_dim, latent_dim, depth, width)
        self.log_gamma_z = nn.Parameter(torch.zeros(()))

    def moments(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(u|z)."""
        mu, logvar = self.encoder(z).chunk(2, dim=1)
        return mu, logvar

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        return self.moments(z)[0]

    def loss(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.moments(z)
        u = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = gaussian_nll(z, self.decoder(u), self.log_gamma_z).mean()
        kl = kl_to_standard_normal(mu, logvar).mean()
        return {"loss": recon + kl, "recon": recon, "kl": kl, "gamma_z": self.log_gamma_z.exp()}

    @torch.no_grad()
    def sample_codes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(ẑ(u), γ_z² I) for u ~ N(0, I): codes for the first stage's decoder."""
        where = generator.device if generator is not None else self.device
        u = torch.randn(n, self.latent_dim, generator=generator, device=where).to(self.device)
        eps = torch.randn(n, self.latent_dim, generator=generator, device=where).to(self.device)
        return self.decoder(u) + self.log_gamma_z.exp() * eps

    def phases(self) -> list[Phase]:
        nets = [*self.encoder.parameters(), *self.decoder.parameters()]
        return [Phase("second-stage", nets, "loss", lr=self.lr),
                Phase("gamma-z", [self.log_gamma_z], "loss", lr=self.gamma_lr)]  # fmt: skip
