"""Wasserstein autoencoder with a GAN penalty, WAE-GAN (Tolstikhin, Bousquet, Gelly &
Schölkopf 2018, "Wasserstein Auto-Encoders", ICLR, Algorithm 2; the authors' code:
github.com/tolstikhin/wae).

The WAE objective E[c(x, G(z))] + λ·D_Z(q(z), p(z)) with the divergence D_Z estimated by an
adversary in code space instead of the MMD of ``wae-mmd``. Two phases per batch, in turn
(``update_order = "sequential"``), as the authors' training loop runs them:

1. **autoencoder** — encoder and decoder step on c(x, G(E(x))) + λ·(−log D(E(x))), the
   non-saturating form of the penalty the authors' code uses;
2. **adversary** — the adversary steps on λ·(−log D(z̃) − log(1 − D(E(x)))) for prior draws z̃
   and the batch's codes, encoded after phase 1's update and detached.

The adversary's accuracy is logged every epoch (``disc_acc``). ``loss`` is the reconstruction
cost: the penalty's value depends on the adversary of the moment, so the objective's sum is no
measure of progress (phase 1 steps on ``ae_loss``, the sum). Samples decode prior draws
(sampler ``prior``); ``gmm`` is kept beside it for the sampler table.

Defaults, and where they come from (the authors' ``configs.py`` and ``models.py``, MNIST):
- the adversary: 4 hidden layers of 512 ReLU units and one logit (``d_num_layers``,
  ``d_num_filters``), without the "prior log-density trick" (``gan_p_trick`` is off for MNIST);
- lr 1e-3 for the autoencoder and 5e-4 for the adversary, Adam with β₁ = 0.5;
- c(x, x̂) = 0.05·‖x − x̂‖² (their ``l2sq`` cost), σ = 1, and λ = 10: the λ their MNIST
  configuration sets (there for the MMD penalty; the code has no separate MNIST value for the
  GAN one), an option (``gan_weight``).

Where aebench departs, and why: the nets are aebench's shared encoder/decoder, and there is no
encoder pre-training and no learning-rate decay, as for ``wae-mmd`` (models/wae_mmd/model.py).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from aebench.models.backbones import encoder_and_decoder
from aebench.models.base import GenerativeAutoencoder, Phase
from aebench.models.critics import CodeCritic, discriminate, fool
from aebench.models.registry import register
from aebench.models.wae_gan.config import WAEGANConfig
from aebench.models.wae_mmd.model import reconstruction_cost


@register("wae-gan")
class WAEGAN(GenerativeAutoencoder):
    family = "adversarial"
    default_sampler = "prior"
    samplers = ("prior", "gmm")
    update_order = "sequential"
    config_class = WAEGANConfig

    def __init__(
        self,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        adversary: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        cfg = WAEGANConfig.from_kwargs("wae-gan", kwargs)
        super().__init__(**cfg.to_json())
        self.cfg = cfg
        self.latent_dim = cfg.latent_dim
        self.encoder, self.decoder = encoder_and_decoder(cfg, encoder, decoder)
        self.adversary = adversary or CodeCritic(cfg.latent_dim, cfg.adv_hidden)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def autoencoder_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Phase 1: the reconstruction cost plus λ times the non-saturating penalty."""
        z = self.encode(x)
        cfg = self.cfg
        recon = reconstruction_cost(self.decode_logits(z), x, cfg.recon, cfg.sigma).mean()
        penalty = fool(self.adversary, z)
        return {"loss": recon, "recon": recon, "gan_penalty": penalty,
                "ae_loss": recon + cfg.gan_weight * penalty}  # fmt: skip

    def adversary_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Phase 2: prior draws are real, the batch's codes (detached) are fake; times λ."""
        with torch.no_grad():
            codes = self.encode(x)
        prior = torch.randn_like(codes) * self.cfg.prior_sigma
        both, acc = discriminate(self.adversary, prior, codes)
        return {"adv_loss": self.cfg.gan_weight * both, "disc_acc": acc}

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**self.autoencoder_terms(x), **self.adversary_terms(x)}

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.isotropic_samples(self.cfg.prior_sigma, n, generator)

    def phases(self) -> list[Phase]:
        cfg = self.cfg
        betas = (cfg.adam_beta1, 0.999)
        autoencoder = list(self.encoder.parameters()) + list(self.decoder.parameters())
        return [
            Phase("autoencoder", autoencoder, "ae_loss", lr=cfg.lr, betas=betas,
                  terms=self.autoencoder_terms),
            Phase("adversary", list(self.adversary.parameters()), "adv_loss", lr=cfg.lr_adv,
                  betas=betas, terms=self.adversary_terms),
        ]  # fmt: skip
