from aebench.models.wae_gan.config import WAEGANConfig
from aebench.models.wae_gan.model import WAEGAN

__all__ = ["WAEGAN", "WAEGANConfig"]
