"""Options of FactorVAE (models/factor_vae/model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.models.vae.config import VAEConfig


@dataclass(frozen=True)
class FactorVAEConfig(VAEConfig):
    #: γ, the weight of the total-correlation penalty: the common reference implementation's
    #: default (github.com/1Konny/FactorVAE, main.py)
    gamma: float = 6.4
    #: the discriminator's hidden layers: six of 1000 leaky-ReLU units (models/factor_vae/model.py
    #: on the depth)
    disc_hidden: tuple[int, ...] = (1000,) * 6
    lr_disc: float = 1e-4  #: the discriminator's Adam learning rate (reference implementation)

    def validate(self, model: str) -> None:
        super().validate(model)
        checks = (
            ("gamma", self.gamma >= 0, ">= 0"),
            ("lr_disc", self.lr_disc > 0, "> 0"),
            ("disc_hidden", all(1 <= h <= 65_536 for h in self.disc_hidden), "1 to 65536 each"),
        )
        self.require(model, checks)
