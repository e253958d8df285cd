"""VAE-GAN (Larsen, Sønderby, Larochelle & Winther 2016, "Autoencoding beyond pixels").

A VAE whose decoder doubles as a GAN generator. Per batch, with z ~ q(z|x) (reparameterised),
x̃ = dec(z), z_p ~ N(0, I), x_p = dec(z_p) and Dis_l the discriminator's last hidden layer:

* ``kl``            KL(q(z|x) ‖ N(0, I)), closed form (the prior term).
* ``recon``         L_pixel: the pixel-space negative log-likelihood of x under dec(z) (Bernoulli
  or fixed-σ Gaussian, summed over pixels) — the optional pixel term.
* ``feature_recon`` L_feature = ½‖Dis_l(x̃) − Dis_l(x)‖², summed over features (a Gaussian in
  feature space, the paper's "learned similarity"); the real side is detached.
* ``disc_loss``     the discriminator's cross-entropy on real x vs. *both* reconstructions x̃ and
  prior samples x_p.
* ``gen_loss``      the generator's non-saturating GAN loss −log D(·) on x̃ and x_p
  (Goodfellow et al. 2014), used instead of the saturating log(1 − D(·)) for stable early
  training.

Three parameter groups, three Adam optimizers (β₁ = 0.5, as in DCGAN), declared as
:class:`~aebench.models.base.Phase` objects so the one harness drives them:

* encoder:        β·kl + pixel_weight·L_pixel + feature_weight·L_feature
* decoder:        pixel_weight·L_pixel + γ·feature_weight·L_feature + adv_weight·gen_loss
* discriminator:  disc_loss

The encoder never sees the GAN term; the feature reconstruction reaches encoder and decoder
through the (fixed, for that step) discriminator. γ weights the decoder's feature
reconstruction against its GAN term, as in the paper.

``"loss"`` stays the pixel-space negative ELBO (L_pixel + KL), comparable with the VAE's.

Scale of the terms and stabilisation — why the defaults are what they are. The pixel term is
summed over all 784 pixels (≈100–200 nats per image) while a GAN loss is ≈1 nat per image, so
with ``adv_weight = 1`` the GAN term is noise next to the pixel term: samples are as blurry as
the VAE's, and the discriminator, facing blurry fakes, wins outright (disc_loss → 0) and its
gradients vanish. Simply shrinking the pixel term instead lets a winning discriminator drive the
decoder to noise. What works on MNIST (mnist-5k, mlp and conv) is a GAN term strong enough to
matter (``adv_weight = 100``) *together with* a discriminator kept from winning:

* spectral normalisation of every discriminator weight (Miyato et al. 2018, "Spectral
  Normalization for Generative Adversarial Networks"), bounding its Lipschitz constant;
* dropout (p = 0.3) between the discriminator's features and its logit (as in Salimans et al.
  2016's discriminator); placed after the feature layer, so L_feature sees clean features;
* one-sided label smoothing, real target 0.9 (Salimans et al. 2016, "Improved Techniques for
  Training GANs"); fakes keep target 0;
* the encoder/decoder lr raised to 1e-3 (the VAE's) while the discriminator keeps DCGAN's 2e-4.

With these, disc_loss stays near 1.2–1.3 (chance ≈ 1.39 with smoothing), the losses stay finite,
and prior samples are sharp strokes that read as digits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce_logits

from aebench.models.backbones import build_discriminator, encoder_and_decoder
from aebench.models.base import Phase, recon_nll
from aebench.models.gaussian import kl_to_standard_normal
from aebench.models.registry import register
from aebench.models.vae.model import VAE
from aebench.models.vae_gan.config import VAEGANConfig


@register("vae-gan")
class VAEGAN(VAE):
    family = "adversarial"
    default_sampler = "prior"  #: N(0, I), as the VAE
    samplers = ("prior", "gmm")

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
        self.encoder, self.decoder = encoder_and_decoder(
            cfg, encoder, decoder, code_outputs=2 * cfg.latent_dim
        )
        self.discriminator = discriminator or build_discriminator(
            cfg.arch,
            cfg.image_shape,
            width=cfg.width,
            hidden=cfg.hidden,
            dropout=cfg.disc_dropout,
            spectral_norm=cfg.spectral_norm,
        )

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        mu, logvar = self.moments(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        logits = self.decode_logits(z)
        x_rec = torch.sigmoid(logits)
        x_gen = self.decode(torch.randn_like(mu))

        kl = kl_to_standard_normal(mu, logvar).mean()
        pixel = recon_nll(logits, x, cfg.recon, cfg.sigma).mean()

        n = x.shape[0]
        feats, d_logits = self.discriminator(torch.cat([x, x_rec, x_gen]))
        f_real, f_rec = feats[:n], feats[n : 2 * n]
        feature = 0.5 * (f_rec - f_real.detach()).pow(2).sum(1).mean()

        d_real, d_fake = d_logits[:n], d_logits[n:]
        # One-sided label smoothing: real target ``real_label`` (0.9), fake target 0.
        disc = bce_logits(d_real, torch.full_like(d_real, cfg.real_label)) + bce_logits(
            d_fake, torch.zeros_like(d_fake)
        )
        gen = bce_logits(d_fake, torch.ones_like(d_fake))

        pixel_w = cfg.pixel_weight * pixel
        feature_w = cfg.feature_weight * feature
        prior_term = self.kl_weight() * kl  # β (default 1), ramped over kl_warmup if set
        return {
            "loss": pixel + kl,
            "kl": kl,
            "recon": pixel,
            "feature_recon": feature,
            "encoder_loss": prior_term + pixel_w + feature_w,
            "decoder_loss": pixel_w + cfg.gamma * feature_w + cfg.adv_weight * gen,
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
