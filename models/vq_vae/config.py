"""Options of the VQ-VAE and its learned prior (models/vq_vae/model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.models.ae.config import AEConfig


@dataclass(frozen=True)
class VQVAEConfig(AEConfig):
    arch: str = "conv"  #: the only backbone with a spatial code grid
    # the codebook's dimension is the run's latent_dim (a grid option), its size K this
    codebook_size: int = 512  #: K, the paper's
    commitment: float = 0.25  #: β of the commitment loss, the paper's
    ema: bool = False  #: learn the codebook by moving averages (the paper's appendix) not its loss
    ema_decay: float = 0.99  #: γ of the moving averages, the paper's
    #: restart an entry whose moving-average share of the vectors fell below this / K (0: never)
    restart_below: float = 0.1
    prior_depth: int = 8  #: gated layers of the PixelCNN prior (its receptive field: the grid)
    prior_channels: int = 64  #: channels of the PixelCNN prior
    prior_lr: float = 1e-3  #: the prior's Adam learning rate
    #: the prior stage's budget, as a share of the run's: half, where the prior's held-out
    #: NLL was lowest in a 30-epoch run (it overfits the training grids after; docs/models.md)
    prior_budget: float = 0.5

    def validate(self, model: str) -> None:
        super().validate(model)
        checks = (
            ("arch", self.arch == "conv", "'conv' (the code is a spatial grid)"),
            ("codebook_size", 2 <= self.codebook_size <= 65_536, "2 to 65536"),
            ("commitment", self.commitment >= 0, ">= 0"),
            ("ema_decay", 0 < self.ema_decay < 1, "in (0, 1)"),
            ("restart_below", 0 <= self.restart_below < 1, "in [0, 1)"),
            ("prior_depth", 1 <= self.prior_depth <= 64, "1 to 64"),
            ("prior_channels", 1 <= self.prior_channels <= 4096, "1 to 4096"),
            ("prior_lr", self.prior_lr > 0, "> 0"),
            ("prior_budget", 0 < self.prior_budget <= 100, "in (0, 100]"),
        )
        self.require(model, checks)
