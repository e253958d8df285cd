"""Options of the Gaussian VAE (and of β-VAE: the same model with ``beta=2``, chosen in
models/vae/model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.core.errors import UsageError
from aebench.models.ae.config import AEConfig


@dataclass(frozen=True)
class VAEConfig(AEConfig):
    beta: float = 1.0  #: weight on the KL term (Higgins et al. 2017 use beta > 1)

    def validate(self, model: str) -> None:
        super().validate(model)
        if self.beta < 0:
            raise UsageError(f"{model}: beta must be >= 0, got {self.beta!r}")
