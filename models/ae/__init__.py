from models.ae.config import AEConfig
from models.ae.model import AE

__all__ = ["AE", "AEConfig"]
