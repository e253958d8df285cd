"""FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising", ICML).

A VAE whose objective adds γ times the total correlation TC(z) = KL(q(z) ‖ Π_j q(z_j)) of the
aggregate posterior, estimated with the density-ratio trick: a discriminator D with two logits
learns to tell codes z ~ q(z) (class 0) from codes whose dimensions were shuffled
independently across a batch (class 1, a draw from Π_j q(z_j)), and then

    TC(z) ≈ E_q(z)[log D(z)₀ − log D(z)₁],   the difference of its two logits.

Two phases per step, in turn (``update_order = "sequential"``), as in the paper's Algorithm 2:

1. **vae** — encoder and decoder step on the negative ELBO + γ·TC of the first batch; D is
   held fixed (only the VAE's parameters are stepped);
2. **discriminator** — D steps on ½(CE(D(z), 0) + CE(D(perm(z′)), 1)), with z the first
   batch's codes and z′ those of a *second*, independent batch, both drawn from q(z|x) after
   phase 1's update and computed without gradients: the discriminator's loss never reaches the
   encoder (a test checks that its gradient there is exactly zero).

The second batch is real data the step consumes: the model declares ``batches_per_step = 2``,
the harness hands it 2 × batch-size images per step, and an epoch's budget counts both halves,
so FactorVAE sees each training image once per epoch, like every other model, in half the VAE
steps. The discriminator's accuracy is logged every epoch (``disc_acc``), with the TC estimate
(``tc``). ``loss`` stays the negative ELBO, comparable with the VAE's.

Defaults, and where they come from:
- the discriminator: leaky-ReLU(0.2) layers of 1000 units and 2 logits, on its own Adam with
  lr 1e-4 and betas (0.5, 0.9), as in the common reference implementation
  (github.com/1Konny/FactorVAE, ``model.py``, ``main.py``). The reference has five hidden
  layers (six linear layers in all); aebench uses six hidden layers, the count the issue that
  added the model gives; ``disc_hidden`` sets either;
- γ = 6.4, the reference implementation's default (the paper sweeps larger values on dSprites);
- permutations drawn independently per dimension (``aebench.models.critics.permute_dims``).

Where aebench departs, and why: the VAE is aebench's (its shared nets, Bernoulli likelihood
and the 1e-3 learning rate of every aebench VAE, where the reference uses 1e-4 over 10⁶
steps): the comparison holds everything but the objective fixed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.functional import cross_entropy

from aebench.models.base import Phase, recon_nll
from aebench.models.critics import CodeCritic, permute_dims
from aebench.models.factor_vae.config import FactorVAEConfig
from aebench.models.gaussian import kl_to_standard_normal
from aebench.models.registry import register
from aebench.models.vae.model import VAE

#: the discriminator's Adam betas (the reference implementation's)
DISC_BETAS = (0.5, 0.9)


def halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's two batches (the second for the permuted codes); a single image serves as
    both."""
    if x.shape[0] < 2:
        return x, x
    first, second = x.chunk(2)
    return first, second


@register("factor-vae")
class FactorVAE(VAE):
    family = "adversarial"
    update_order = "sequential"
    batches_per_step = 2
    config_class = FactorVAEConfig
    _name = "factor-vae"
    default_sampler = "prior"  #: N(0, I), as the VAE
    samplers = ("prior", "gmm")

    def __init__(
        self,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(encoder, decoder, **kwargs)
        hidden = self.cfg.disc_hidden
        self.discriminator = discriminator or CodeCritic(
            self.latent_dim, hidden, outputs=2, negative_slope=0.2
        )

    def draw_codes(self, x: torch.Tensor) -> torch.Tensor:
        """z ~ q(z|x), reparameterised."""
        mu, logvar = self.moments(x)
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp()

    def total_correlation(self, z: torch.Tensor) -> torch.Tensor:
        """The density-ratio estimate of TC(z): the mean difference of D's two logits."""
        logits = self.discriminator(z)
        return (logits[:, 0] - logits[:, 1]).mean()

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The negative ELBO (``loss``), its parts, the TC estimate and the VAE phase's loss."""
        mu, logvar = self.moments(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = recon_nll(self.decode_logits(z), x, self.cfg.recon, self.cfg.sigma).mean()
        kl = kl_to_standard_normal(mu, logvar).mean()
        tc = self.total_correlation(z)
        elbo_loss = recon + kl
        vae_loss = recon + self.kl_weight() * kl + self.cfg.gamma * tc
        return {"loss": elbo_loss, "recon": recon, "kl": kl, "tc": tc, "vae_loss": vae_loss}

    def vae_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Phase 1, on the step's first batch."""
        return self.elbo_terms(halves(x)[0])

    def discriminator_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Phase 2: the first batch's codes are class 0, the second's, permuted, class 1."""
        first, second = halves(x)
        with torch.no_grad():
            joint = self.draw_codes(first)
            marginals = permute_dims(self.draw_codes(second))
        lj, lm = self.discriminator(joint), self.discriminator(marginals)
        zeros = torch.zeros(lj.shape[0], dtype=torch.long, device=lj.device)
        ones = torch.ones(lm.shape[0], dtype=torch.long, device=lm.device)
        disc = 0.5 * (cross_entropy(lj, zeros) + cross_entropy(lm, ones))
        hits = (lj.argmax(1) == 0).float().sum() + (lm.argmax(1) == 1).float().sum()
        return {"disc_loss": disc, "disc_acc": hits / (lj.shape[0] + lm.shape[0])}

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every term on ``x``: the ELBO's on all of it, the discriminator's on its halves."""
        return {**self.elbo_terms(x), **self.discriminator_terms(x)}

    def phases(self) -> list[Phase]:
        vae = list(self.encoder.parameters()) + list(self.decoder.parameters())
        return [
            Phase("vae", vae, "vae_loss", lr=self.cfg.lr, terms=self.vae_terms),
            Phase("discriminator", list(self.discriminator.parameters()), "disc_loss",
                  lr=self.cfg.lr_disc, betas=DISC_BETAS, terms=self.discriminator_terms),
        ]  # fmt: skip
