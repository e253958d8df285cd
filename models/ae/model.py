"""Plain deterministic autoencoder.

An AE has no prior to sample from, so — as in Ghosh et al. 2020 ("From variational to
deterministic autoencoders") — ``sample`` draws codes from a full-covariance Gaussian fitted to
the training codes. The harness fits it after training (:meth:`fit_prior`); mean and Cholesky
factor are buffers, so they are saved and restored with the weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from aebench.models.ae.config import AEConfig
from aebench.models.backbones import encoder_and_decoder
from aebench.models.base import GenerativeAutoencoder, Phase, recon_nll
from aebench.models.gaussian import fit_gaussian
from aebench.models.registry import register


@register("ae")
class AE(GenerativeAutoencoder):
    family = "deterministic AE"
    default_sampler = "gaussian"  #: one Gaussian fitted to the training codes
    samplers = ("gaussian", "normal", "gmm")
    fits_prior = True

    def __init__(
        self, encoder: nn.Module | None = None, decoder: nn.Module | None = None, **kwargs: Any
    ) -> None:
        cfg = AEConfig.from_kwargs("ae", kwargs)
        super().__init__(**cfg.to_json())
        self.cfg = cfg
        self.latent_dim = cfg.latent_dim
        self.encoder, self.decoder = encoder_and_decoder(cfg, encoder, decoder)
        self.register_buffer("code_mean", torch.zeros(cfg.latent_dim))
        self.register_buffer("code_chol", torch.eye(cfg.latent_dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        recon = recon_nll(self.decode_logits(self.encode(x)), x, self.cfg.recon, self.cfg.sigma)
        recon = recon.mean()
        return {"loss": recon, "recon": recon}

    def fit_prior(self, codes: torch.Tensor) -> None:
        mean, chol = fit_gaussian(codes)
        self.code_mean.copy_(mean.to(self.code_mean))
        self.code_chol.copy_(chol.to(self.code_chol))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.gaussian_samples(self.code_mean, self.code_chol, n, generator)

    def phases(self) -> list[Phase]:
        return [
            Phase(
                "model",
                list(self.encoder.parameters()) + list(self.decoder.parameters()),
                "loss",
                lr=self.cfg.lr,
            )
        ]
