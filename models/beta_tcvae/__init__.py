from aebench.models.beta_tcvae.config import BetaTCVAEConfig
from aebench.models.beta_tcvae.model import BetaTCVAE, kl_decomposition

__all__ = ["BetaTCVAE", "BetaTCVAEConfig", "kl_decomposition"]
