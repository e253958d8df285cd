from aebench.models.aae.config import AAEConfig
from aebench.models.aae.model import AAE

__all__ = ["AAE", "AAEConfig"]
