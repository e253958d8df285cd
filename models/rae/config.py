"""Options of the regularised deterministic autoencoders, RAE-L2 and RAE-GP
(models/rae/model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.models.ae.config import AEConfig
from aebench.models.config import ModelConfig

#: the reconstruction costs an RAE may train with: the authors' per-pixel mean squared error,
#: or the Bernoulli and Gaussian negative log-likelihoods the other models use
RAE_COSTS = ("pixel-mse", "bce", "mse")


@dataclass(frozen=True)
class RAEConfig(AEConfig):
    recon: str = "pixel-mse"  #: mean over pixels of (x − x̂)², the authors' "l2" cost
    code_weight: float = 1e-4  #: β on the code penalty mean_d(z²) (authors' MNIST value)
    decoder_weight: float = 1e-7  #: λ on the decoder regulariser (authors' MNIST RAE-L2 value)
    #: rae-gp: probe vectors per image for the unbiased estimate of ‖∇_z D(z)‖²_F (0: exact)
    gp_probes: int = 1
    lr: float = 5e-4  #: Adam's learning rate in the authors' MNIST code

    def validate(self, model: str) -> None:
        ModelConfig.validate(self, model)
        checks = (
            ("recon", self.recon in RAE_COSTS, f"one of {', '.join(RAE_COSTS)}"),
            ("sigma", self.sigma > 0, "> 0"),
            ("code_weight", self.code_weight >= 0, ">= 0"),
            ("decoder_weight", self.decoder_weight >= 0, ">= 0"),
            ("gp_probes", 0 <= self.gp_probes <= 64, "from 0 (exact) to 64"),
        )
        self.require(model, checks)
