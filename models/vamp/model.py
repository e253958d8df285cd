"""A VAE with a VampPrior (Tomczak & Welling 2018, "VAE with a VampPrior", AISTATS; the
authors' code: github.com/jmtomczak/vae_vampprior).

The prior is the mixture of the variational posteriors of K learned pseudo-inputs uₖ,

    p(z) = (1/K) Σₖ q(z | uₖ),

so it adapts to the aggregate posterior instead of pulling the codes towards N(0, I). The
pseudo-inputs are parameters of the model, images in [0, 1] (the authors' hard-tanh of a
learned matrix, here a clamp: the same values and gradients), trained with everything else. The
KL term has no closed form; it is the single-sample estimate log q(z|x) − log p(z) at the z the
reconstruction uses, as in the authors' code. The ``prior`` sampler picks a pseudo-input
uniformly and decodes a draw from its posterior; ``prior()`` returns the mixture as a
``torch.distributions`` object, so the latent metrics' KL, ELBO and NLL use the same density.

Defaults, and where they come from: K = 500 (the paper's MNIST value); pseudo-inputs start as
N(0.05, 0.01²) pixels (the authors' ``pseudoinputs_mean`` and ``pseudoinputs_std``).

Where aebench departs, and why:
- the nets are aebench's shared encoder/decoder, not the paper's gated dense layers, and
  ``latent_dim`` is the suite's (the paper uses 40);
- no KL warm-up by default: the authors' code anneals the KL over 100 epochs, longer than
  aebench's CPU-sized budgets; ``-o kl_warmup=F`` anneals over a share F of the budget;
- Adam at lr 1e-3 like the other VAEs (the authors use 5e-4 with early stopping);
- the encoder's log-variance is not clamped (the authors' hard-tanh keeps it in [−6, 2]): the
  shared encoder is the VAE's, and the prior's density is computed in log space;
- with a batch-norm encoder (``bench-conv``, ``ghosh2020-conv``) the pseudo-inputs pass through
  it as a batch of their own in training, so they also move its running statistics.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from aebench.models.base import recon_nll
from aebench.models.registry import register
from aebench.models.vae.model import VAE
from aebench.models.vamp.config import VampConfig

LOG_2PI = math.log(2 * math.pi)


@register("vamp")
class VampVAE(VAE):
    config_class = VampConfig
    _name = "vamp"
    default_sampler = "prior"  #: the learned mixture of the pseudo-inputs' posteriors
    samplers = ("prior", "gmm")

    def __init__(
        self, encoder: nn.Module | None = None, decoder: nn.Module | None = None, **kwargs: Any
    ) -> None:
        super().__init__(encoder, decoder, **kwargs)
        cfg = self.cfg
        pixels = math.prod(cfg.image_shape)
        start = torch.randn(cfg.components, pixels) * cfg.pseudo_std + cfg.pseudo_mean
        self.pseudo = nn.Parameter(start)

    def pseudo_inputs(self) -> torch.Tensor:
        """The K pseudo-inputs as images in [0, 1]."""
        return self.pseudo.clamp(0.0, 1.0).view(-1, *self.cfg.image_shape)

    def prior_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and log-variances (K, d) of the mixture's components: q(z | uₖ)."""
        return self.moments(self.pseudo_inputs())

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = log (1/K) Σₖ N(z; μₖ, diag σₖ²) per row of ``z`` (batch, d)."""
        mu, logvar = self.prior_moments()
        diff = z[:, None, :] - mu[None]
        log_n = -0.5 * (LOG_2PI + logvar[None] + diff.pow(2) * (-logvar).exp()[None]).sum(-1)
        return torch.logsumexp(log_n, 1) - math.log(mu.shape[0])

    def prior(self) -> MixtureSameFamily:
        mu, logvar = self.prior_moments()
        weights = Categorical(logits=mu.new_zeros(mu.shape[0]))
        parts = Independent(Normal(mu, (0.5 * logvar).exp(), validate_args=False), 1)
        return MixtureSameFamily(weights, parts, validate_args=False)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.moments(x)
        eps = torch.randn_like(mu)
        z = mu + eps * (0.5 * logvar).exp()
        recon = recon_nll(self.decode_logits(z), x, self.cfg.recon, self.cfg.sigma).mean()
        log_q = -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1)
        kl = (log_q - self.log_prior(z)).mean()
        weight = self.kl_weight()
        return {"loss": recon + weight * kl, "recon": recon, "kl": kl}

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        mu, logvar = self.prior_moments()
        where = generator.device if generator is not None else mu.device
        which = torch.randint(mu.shape[0], (n,), generator=generator, device=where).to(mu.device)
        eps = torch.randn(n, mu.shape[1], generator=generator, device=where).to(mu.device)
        return self.decode(mu[which] + eps * (0.5 * logvar[which]).exp())
