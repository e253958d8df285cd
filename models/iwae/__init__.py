from aebench.models.iwae.config import IWAEConfig
from aebench.models.iwae.model import IWAE

__all__ = ["IWAE", "IWAEConfig"]
