from aebench.models.factor_vae.config import FactorVAEConfig
from aebench.models.factor_vae.model import FactorVAE

__all__ = ["FactorVAE", "FactorVAEConfig"]
