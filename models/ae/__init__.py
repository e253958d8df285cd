from aebench.models.ae.config import AEConfig
from aebench.models.ae.model import AE

__all__ = ["AE", "AEConfig"]
