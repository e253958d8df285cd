from aebench.models.wae_mmd.config import WAEConfig
from aebench.models.wae_mmd.model import WAEMMD

__all__ = ["WAEMMD", "WAEConfig"]
