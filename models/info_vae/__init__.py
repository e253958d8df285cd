from aebench.models.info_vae.config import InfoVAEConfig
from aebench.models.info_vae.model import InfoVAE

__all__ = ["InfoVAE", "InfoVAEConfig"]
