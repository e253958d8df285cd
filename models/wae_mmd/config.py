"""Options of the Wasserstein autoencoder with an MMD penalty (models/wae_mmd/model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.models.ae.config import AEConfig
from aebench.models.config import ModelConfig

#: the reconstruction costs a WAE may train with: the authors' 0.05·‖x − x̂‖², or the Bernoulli
#: and Gaussian negative log-likelihoods the other models use
WAE_COSTS = ("l2sq", "bce", "mse")


@dataclass(frozen=True)
class WAEConfig(AEConfig):
    recon: str = "l2sq"  #: c(x, x̂) = 0.05·‖x − x̂‖², the cost of the authors' code
    mmd_weight: float = 10.0  #: λ, the authors' MNIST value (their configs.py)
    prior_sigma: float = 1.0  #: p(z) = N(0, σ²I); σ = 1 in the authors' MNIST setting
    adam_beta1: float = 0.5  #: Adam's β₁ in the authors' code

    def validate(self, model: str) -> None:
        ModelConfig.validate(self, model)
        checks = (
            ("recon", self.recon in WAE_COSTS, f"one of {', '.join(WAE_COSTS)}"),
            ("sigma", self.sigma > 0, "> 0"),
            ("mmd_weight", self.mmd_weight >= 0, ">= 0"),
            ("prior_sigma", self.prior_sigma > 0, "> 0"),
            ("adam_beta1", 0 <= self.adam_beta1 < 1, "in [0, 1)"),
        )
        self.require(model, checks)
