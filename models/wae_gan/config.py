"""Options of the Wasserstein autoencoder with a GAN penalty (models/wae_gan/model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.models.ae.config import AEConfig
from aebench.models.config import ModelConfig
from aebench.models.wae_mmd.config import WAE_COSTS


@dataclass(frozen=True)
class WAEGANConfig(AEConfig):
    recon: str = "l2sq"  #: c(x, x̂) = 0.05·‖x − x̂‖², the cost of the authors' code
    #: λ, the weight of the GAN penalty (and of the adversary's loss, as in the authors' code):
    #: their MNIST configuration's λ
    gan_weight: float = 10.0
    prior_sigma: float = 1.0  #: p(z) = N(0, σ²I); σ = 1 in the authors' MNIST setting
    #: the adversary's hidden layers: 4 × 512 ReLU units, the authors' MNIST setting
    adv_hidden: tuple[int, ...] = (512, 512, 512, 512)
    # lr (the autoencoder's) is 1e-3, the authors' MNIST value and aebench's shared default
    lr_adv: float = 5e-4  #: the adversary's learning rate (the authors' MNIST value)
    adam_beta1: float = 0.5  #: Adam's β₁ of both optimizers in the authors' code

    def validate(self, model: str) -> None:
        ModelConfig.validate(self, model)
        checks = (
            ("recon", self.recon in WAE_COSTS, f"one of {', '.join(WAE_COSTS)}"),
            ("sigma", self.sigma > 0, "> 0"),
            ("gan_weight", self.gan_weight >= 0, ">= 0"),
            ("prior_sigma", self.prior_sigma > 0, "> 0"),
            ("lr_adv", self.lr_adv > 0, "> 0"),
            ("adam_beta1", 0 <= self.adam_beta1 < 1, "in [0, 1)"),
            ("adv_hidden", all(1 <= h <= 65_536 for h in self.adv_hidden), "1 to 65536 each"),
        )
        self.require(model, checks)
