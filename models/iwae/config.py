"""Options of the importance-weighted autoencoder (models/iwae/model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.models.ae.config import AEConfig
from aebench.models.config import OptionError

#: the most importance samples per image a training step may draw (K·batch images decoded)
MAX_K = 5000


@dataclass(frozen=True)
class IWAEConfig(AEConfig):
    k: int = 5  #: importance samples per image; Burda et al. train with 1, 5 and 50

    def validate(self, model: str) -> None:
        super().validate(model)
        if not 1 <= self.k <= MAX_K:
            raise OptionError("k", f"{model}: k must be 1 to {MAX_K}, got {self.k!r}")
