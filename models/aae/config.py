"""Options of the adversarial autoencoder (models/aae/model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.models.ae.config import AEConfig
from aebench.models.base import OPTIMIZERS


@dataclass(frozen=True)
class AAEConfig(AEConfig):
    #: the discriminator's hidden layers: two of 1000 ReLU units, the paper's MNIST setting
    disc_hidden: tuple[int, ...] = (1000, 1000)
    prior_sigma: float = 1.0  #: p(z) = N(0, σ²I)
    #: the optimizer of all three phases (one of models.base.OPTIMIZERS); the paper uses SGD
    #: with momentum, aebench Adam (models/aae/model.py says why)
    optimizer: str = "adam"
    momentum: float = 0.9  #: for optimizer = "sgd" or "rmsprop"
    # lr (the reconstruction phase's) is the shared 1e-3 of every aebench autoencoder
    lr_disc: float = 1e-4  #: the discriminator's learning rate
    lr_gen: float = 1e-3  #: the encoder's learning rate as the generator (= the reconstruction's)
    adam_beta1: float = 0.9  #: Adam's β₁ in the two adversarial phases (Adam's default)

    def validate(self, model: str) -> None:
        super().validate(model)
        checks = (
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("lr_disc", self.lr_disc > 0, "> 0"),
            ("lr_gen", self.lr_gen > 0, "> 0"),
            ("adam_beta1", 0 <= self.adam_beta1 < 1, "in [0, 1)"),
            ("prior_sigma", self.prior_sigma > 0, "> 0"),
            ("disc_hidden", all(1 <= h <= 65_536 for h in self.disc_hidden), "1 to 65536 each"),
        )
        self.require(model, checks)
