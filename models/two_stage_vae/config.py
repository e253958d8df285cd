"""Options of the two-stage VAE (models/two_stage_vae/model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.models.config import ModelConfig
from aebench.models.vae.config import VAEConfig

#: the decoder likelihoods: the authors' Gaussian with a learned γ_x, or the fixed ones
RECONS = ("learned-gaussian", "bce", "mse")


@dataclass(frozen=True)
class TwoStageVAEConfig(VAEConfig):
    recon: str = "learned-gaussian"  #: a Gaussian decoder whose standard deviation γ_x is learned
    second_depth: int = 3  #: hidden layers of each of stage 2's networks (the authors' code)
    second_width: int = 1024  #: units per hidden layer of stage 2 (the authors' code)
    second_lr: float = 1e-4  #: stage 2's Adam learning rate (the authors' code)
    #: the Adam learning rate of log γ_x and log γ_z, each in a phase of its own (model.py: why)
    gamma_lr: float = 1e-2
    #: stage 2's budget as a share of the run's: the authors train it 800 epochs to stage 1's 400
    second_budget: float = 2.0

    @property
    def likelihood(self) -> str:
        return "gaussian" if self.recon == "learned-gaussian" else super().likelihood

    def validate(self, model: str) -> None:
        ModelConfig.validate(self, model)  # the VAE's own check knows only bce and mse
        checks = (
            ("recon", self.recon in RECONS, f"one of {', '.join(RECONS)}"),
            ("sigma", self.sigma > 0, "> 0"),
            ("beta", self.beta >= 0, ">= 0"),
            ("kl_warmup", 0 <= self.kl_warmup <= 1, "from 0 to 1"),
            ("second_depth", 1 <= self.second_depth <= 64, "1 to 64"),
            ("second_width", 1 <= self.second_width <= 65_536, "1 to 65536"),
            ("second_lr", self.second_lr > 0, "> 0"),
            ("gamma_lr", self.gamma_lr > 0, "> 0"),
            ("second_budget", 0 < self.second_budget <= 100, "in (0, 100]"),
        )
        self.require(model, checks)
