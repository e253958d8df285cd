"""Options of InfoVAE (models/info_vae/model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.models.config import OptionError
from aebench.models.vae.config import VAEConfig


@dataclass(frozen=True)
class InfoVAEConfig(VAEConfig):
    alpha: float = 0.0  #: α: the KL term is weighted 1 − α (0: the full KL, as the VAE)
    lam: float = 1000.0  #: λ: the MMD term is weighted α + λ − 1 (the paper's MMD experiments)

    def validate(self, model: str) -> None:
        super().validate(model)
        if self.beta != 1.0:
            raise OptionError(
                "beta", f"{model}: the KL weight is 1 - alpha; set alpha, not beta ({self.beta!r})"
            )
        if self.alpha > 1:
            raise OptionError("alpha", f"{model}: alpha must be <= 1, got {self.alpha!r}")
        if self.alpha + self.lam - 1 < 0:
            raise OptionError(
                "lam",
                f"{model}: alpha + lam - 1 weighs the MMD and must be >= 0, got "
                f"{self.alpha + self.lam - 1!r} (the plain VAE is alpha = 0, lam = 1)",
            )
