from aebench.models.vae_gan.config import VAEGANConfig
from aebench.models.vae_gan.model import VAEGAN

__all__ = ["VAEGAN", "VAEGANConfig"]
