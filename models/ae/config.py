"""Options of the deterministic autoencoder."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.core.errors import UsageError
from aebench.models.config import ModelConfig


@dataclass(frozen=True)
class AEConfig(ModelConfig):
    recon: str = "bce"  #: "bce" (Bernoulli) or "mse" (Gaussian with fixed sigma)
    sigma: float = 0.1  #: decoder standard deviation for recon="mse"

    @property
    def likelihood(self) -> str:
        return {"bce": "bernoulli", "mse": "gaussian"}.get(self.recon, "")

    def validate(self, model: str) -> None:
        super().validate(model)
        if self.recon not in ("bce", "mse"):
            raise UsageError(f"{model}: recon must be 'bce' or 'mse', got {self.recon!r}")
        if self.sigma <= 0:
            raise UsageError(f"{model}: sigma must be > 0, got {self.sigma!r}")
