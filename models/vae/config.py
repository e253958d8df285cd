"""Options of the Gaussian VAE (and of β-VAE: the same model with ``beta=2``, chosen in
models/vae/model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.core.errors import UsageError
from aebench.models.ae.config import AEConfig


@dataclass(frozen=True)
class VAEConfig(AEConfig):
    beta: float = 1.0  #: weight on the KL term (Higgins et al. 2017 use beta > 1)
    #: share of the training budget over which the KL weight rises linearly from 0 to beta
    #: (KL annealing, Bowman et al. 2016; "warm-up", Sønderby et al. 2016); 0: off
    kl_warmup: float = 0.0

    def validate(self, model: str) -> None:
        super().validate(model)
        if self.beta < 0:
            raise UsageError(f"{model}: beta must be >= 0, got {self.beta!r}")
        if not 0 <= self.kl_warmup <= 1:
            raise UsageError(f"{model}: kl_warmup must be from 0 to 1, got {self.kl_warmup!r}")
