from models.vae.config import VAEConfig
from models.vae.model import VAE

__all__ = ["VAE", "VAEConfig"]
