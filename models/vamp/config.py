"""Options of the VAE with a VampPrior (models/vamp/model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.models.config import OptionError
from aebench.models.vae.config import VAEConfig

#: the most pseudo-inputs a prior may have (each is an image the encoder sees every step)
MAX_COMPONENTS = 10_000


@dataclass(frozen=True)
class VampConfig(VAEConfig):
    components: int = 500  #: K pseudo-inputs (the paper's MNIST value)
    pseudo_mean: float = 0.05  #: pseudo-inputs start as N(mean, std²) pixels (authors' code)
    pseudo_std: float = 0.01

    def validate(self, model: str) -> None:
        super().validate(model)
        if not 1 <= self.components <= MAX_COMPONENTS:
            raise OptionError(
                "components",
                f"{model}: components must be 1 to {MAX_COMPONENTS}, got {self.components!r}",
            )
        if self.pseudo_std <= 0:
            raise OptionError(
                "pseudo_std", f"{model}: pseudo_std must be > 0, got {self.pseudo_std!r}"
            )
