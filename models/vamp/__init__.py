from aebench.models.vamp.config import VampConfig
from aebench.models.vamp.model import VampVAE

__all__ = ["VampConfig", "VampVAE"]
