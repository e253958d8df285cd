"""Options of VAE-GAN (Larsen et al. 2016)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import UsageError
from models.vae.config import VAEConfig


@dataclass(frozen=True)
class VAEGANConfig(VAEConfig):
    gamma: float = 1e-2  #: decoder weight of the feature reconstruction against the GAN term
    pixel_weight: float = 1.0  #: weight of the pixel-space reconstruction term (0 = paper)
    feature_weight: float = 1.0  #: weight of the discriminator-feature reconstruction
    adv_weight: float = 1.0  #: weight of the generator's GAN loss in the decoder objective
    lr_disc: float = 2e-4
    lr_gen: float = 2e-4  #: lr of the encoder and decoder (Adam, beta1 = 0.5 as in DCGAN)

    def validate(self, model: str) -> None:
        super().validate(model)
        for key in ("gamma", "pixel_weight", "feature_weight", "adv_weight"):
            if getattr(self, key) < 0:
                raise UsageError(f"{model}: {key} must be >= 0, got {getattr(self, key)!r}")
        if self.lr_disc <= 0 or self.lr_gen <= 0:
            raise UsageError(f"{model}: lr_disc and lr_gen must be > 0")
