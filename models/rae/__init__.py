from aebench.models.rae.config import RAEConfig
from aebench.models.rae.model import RAEGP, RAEL2

__all__ = ["RAEGP", "RAEL2", "RAEConfig"]
