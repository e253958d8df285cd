"""Options of InfoVAE (models/info_vae/model.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from aebench.models.config import OptionError
from aebench.models.vae.config import VAEConfig


@dataclass(frozen=True)
class InfoVAEConfig(VAEConfig):
    alpha: float = 0.0  #: α: the KL term is weighted 1 − α (0: the full KL, as the VAE)
    #: λ: the MMD term's weight (the paper's α + λ_paper − 1); 999 is its λ_paper = 1000 at α = 0
    mmd_weight: float = 999.0

    RETIRED_OPTIONS: ClassVar[dict[str, str]] = {
        "lam": "since 2026-12-06 the MMD's weight is mmd_weight (λ), which is the paper's "
        "alpha + lam - 1: lam = 1000 at alpha = 0 is mmd_weight = 999",
    }

    @classmethod
    def upgrade_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Runs recorded before 2026-12-06 hold the paper's λ as ``lam``, which weighed the MMD
        by α + λ − 1: that weight is ``mmd_weight`` now."""
        out = dict(options)
        if "lam" in out and "mmd_weight" not in out:
            lam = out.pop("lam")
            out["mmd_weight"] = float(out.get("alpha", cls.alpha)) + float(lam) - 1.0
        return out

    def validate(self, model: str) -> None:
        super().validate(model)
        if self.beta != 1.0:
            raise OptionError(
                "beta", f"{model}: the KL weight is 1 - alpha; set alpha, not beta ({self.beta!r})"
            )
        checks = (("alpha", self.alpha <= 1, "<= 1"), ("mmd_weight", self.mmd_weight >= 0, ">= 0"))
        self.require(model, checks)
