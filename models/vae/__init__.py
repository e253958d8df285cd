from aebench.models.vae.config import VAEConfig
from aebench.models.vae.model import VAE

__all__ = ["VAE", "VAEConfig"]
