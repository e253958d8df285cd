from aebench.models.two_stage_vae.config import TwoStageVAEConfig
from aebench.models.two_stage_vae.model import TwoStageVAE

__all__ = ["TwoStageVAE", "TwoStageVAEConfig"]
