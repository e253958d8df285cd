"""Options of the β-TCVAE (models/beta_tcvae/model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.models.config import OptionError
from aebench.models.vae.config import VAEConfig

#: how log q(z) is estimated from a minibatch: the paper's minibatch-weighted sampling (the
#: authors' default) or its minibatch-stratified sampling
TC_SAMPLING = ("mws", "mss")


@dataclass(frozen=True)
class BetaTCVAEConfig(VAEConfig):
    alpha: float = 1.0  #: weight on the index-code mutual information I(x; z)
    beta: float = 6.0  #: weight on the total correlation (the authors' example command)
    gamma: float = 1.0  #: weight on the dimension-wise KL Σ_d KL(q(z_d) ‖ p(z_d))
    sampling: str = "mws"  #: minibatch-weighted ("mws") or -stratified ("mss") sampling

    def validate(self, model: str) -> None:
        super().validate(model)
        for key in ("alpha", "gamma"):
            if getattr(self, key) < 0:
                raise OptionError(key, f"{model}: {key} must be >= 0, got {getattr(self, key)!r}")
        if self.sampling not in TC_SAMPLING:
            raise OptionError(
                "sampling",
                f"{model}: sampling must be one of {', '.join(TC_SAMPLING)}, got {self.sampling!r}",
            )
