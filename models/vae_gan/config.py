"""Options of VAE-GAN (Larsen et al. 2016)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from aebench.core.errors import UsageError
from aebench.models.vae.config import VAEConfig


@dataclass(frozen=True)
class VAEGANConfig(VAEConfig):
    """Defaults chosen on mnist-5k (mlp and conv); see ``models/vae_gan/model.py`` for why."""

    gamma: float = 1e-2  #: decoder weight of the feature reconstruction against the GAN term
    pixel_weight: float = 1.0  #: weight of the pixel-space reconstruction term (0 = paper)
    feature_weight: float = 1.0  #: weight of the discriminator-feature reconstruction
    #: weight of the generator's GAN loss (≈1 nat/image) against the pixel term, which is summed
    #: over pixels (≈100-200 nats/image on MNIST); at 1 the GAN term has no visible effect
    adv_weight: float = 100.0
    lr_disc: float = 2e-4  #: discriminator lr (Adam, beta1 = 0.5 as in DCGAN)
    lr_gen: float = 1e-3  #: lr of the encoder and decoder (the VAE's; Adam, beta1 = 0.5)
    real_label: float = 0.9  #: discriminator target for real images (< 1: one-sided smoothing)
    disc_dropout: float = 0.3  #: dropout between the discriminator's features and its logit
    spectral_norm: bool = True  #: spectral normalisation of every discriminator weight

    def validate(self, model: str) -> None:
        super().validate(model)
        for key in ("gamma", "pixel_weight", "feature_weight", "adv_weight"):
            if getattr(self, key) < 0:
                raise UsageError(f"{model}: {key} must be >= 0, got {getattr(self, key)!r}")
        if self.lr_disc <= 0 or self.lr_gen <= 0:
            raise UsageError(f"{model}: lr_disc and lr_gen must be > 0")
        if self.lr != next(f.default for f in fields(VAEConfig) if f.name == "lr"):
            raise UsageError(
                f"{model}: lr is not used: set lr_gen (encoder and decoder) and lr_disc "
                f"(discriminator), got lr={self.lr!r}"
            )
        if not 0 < self.real_label <= 1:
            raise UsageError(f"{model}: real_label must be in (0, 1], got {self.real_label!r}")
        if not 0 <= self.disc_dropout < 1:
            raise UsageError(f"{model}: disc_dropout must be in [0, 1), got {self.disc_dropout!r}")
