from aebench.models.vq_vae.config import VQVAEConfig
from aebench.models.vq_vae.model import VQVAE

__all__ = ["VQVAE", "VQVAEConfig"]
