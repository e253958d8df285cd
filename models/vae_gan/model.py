"""VAE-GAN (Larsen, Sønderby, Larochelle & Winther 2016, "Autoencoding beyond pixels").

A VAE whose decoder doubles as a GAN generator. Reconstruction error is measured in a hidden
layer of the discriminator (a Gaussian in feature space: squared error summed over features),
optionally plus a pixel term. Three parameter groups, three optimizers — declared as
:class:`~models.base.Phase` objects for the harness:

* encoder:        KL + pixel_weight·L_pixel + feature_weight·L_feature
* decoder:        pixel_weight·L_pixel + γ·feature_weight·L_feature + adv_weight·L_GAN(gen.)
* discriminator:  L_GAN(discriminator) on real images vs. reconstructions and prior samples

The generator uses the non-saturating GAN loss (−log D(G(z))) for stable early training.
``"loss"`` is the pixel-space negative ELBO (L_pixel + KL), comparable with the VAE's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce_logits

from models.backbones import build_decoder, build_discriminator, build_encoder
from models.base import Phase, recon_nll
from models.registry import register
from models.vae.model import VAE, gaussian_kl
from models.vae_gan.config import VAEGANConfig


@register("vae-gan")
class VAEGAN(VAE):
    def __init__(
        self,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        cfg = VAEGANConfig.from_kwargs("vae-gan", kwargs)
        nn.Module.__init__(self)
        self.config = cfg.to_json()
        self.cfg = cfg
        self.latent_dim = cfg.latent_dim
        self.encoder = encoder or build_encoder(
            cfg.arch, cfg.image_shape, 2 * cfg.latent_dim, cfg.width, cfg.hidden
        )
        self.decoder = decoder or build_decoder(
            cfg.arch, cfg.image_shape, cfg.latent_dim, cfg.width, cfg.hidden
        )
        self.discriminator = discriminator or build_discriminator(
            cfg.arch, cfg.image_shape, width=cfg.width, hidden=cfg.hidden
        )

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        mu, logvar = self.posterior(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        logits = self.decode_logits(z)
        x_rec = torch.sigmoid(logits)
        x_gen = self.decode(torch.randn_like(mu))

        kl = gaussian_kl(mu, logvar).mean()
        pixel = recon_nll(logits, x, cfg.recon, cfg.sigma).mean()

        n = x.shape[0]
        feats, d_logits = self.discriminator(torch.cat([x, x_rec, x_gen]))
        f_real, f_rec = feats[:n], feats[n : 2 * n]
        feature = 0.5 * (f_rec - f_real.detach()).pow(2).sum(1).mean()

        d_real, d_fake = d_logits[:n], d_logits[n:]
        disc = bce_logits(d_real, torch.ones_like(d_real)) + bce_logits(
            d_fake, torch.zeros_like(d_fake)
        )
        gen = bce_logits(d_fake, torch.ones_like(d_fake))

        pixel_w = cfg.pixel_weight * pixel
        return {
            "loss": pixel + kl,
            "kl": kl,
            "recon": pixel,
            "feature_recon": feature,
            "encoder_loss": kl + pixel_w + cfg.feature_weight * feature,
            "decoder_loss": pixel_w + cfg.gamma * cfg.feature_weight * feature + cfg.adv_weight * gen,
            "disc_loss": disc,
            "gen_loss": gen,
        }

    def phases(self) -> list[Phase]:
        betas = (0.5, 0.999)
        return [
            Phase(
                "encoder",
                list(self.encoder.parameters()),
                "encoder_loss",
                lr=self.cfg.lr_gen,
                betas=betas,
            ),
            Phase(
                "decoder",
                list(self.decoder.parameters()),
                "decoder_loss",
                lr=self.cfg.lr_gen,
                betas=betas,
            ),
            Phase(
                "discriminator",
                list(self.discriminator.parameters()),
                "disc_loss",
                lr=self.cfg.lr_disc,
                betas=betas,
            ),
        ]
