"""The model registry and the built-in model plugins.

``models.create("vae", arch="conv", latent_dim=16)``; ``models.available()`` lists names,
third-party plugins included (entry-point group ``aebench.models``).
"""

from __future__ import annotations

from aebench.models import (  # noqa: F401  (importing a model folder registers it)
    aae,
    ae,
    beta_tcvae,
    factor_vae,
    info_vae,
    iwae,
    rae,
    two_stage_vae,
    vae,
    vae_gan,
    vamp,
    vq_vae,
    wae_gan,
    wae_mmd,
)
from aebench.models.base import FAMILIES, GenerativeAutoencoder, Phase, Schedule, Stage
from aebench.models.registry import (
    available,
    create,
    family_of,
    get,
    likelihood_of,
    register,
    reload_plugins,
    resolved_options,
    supports_arch,
    unregister,
    upgrade_options,
)

__all__ = [
    "FAMILIES",
    "GenerativeAutoencoder",
    "Phase",
    "Schedule",
    "Stage",
    "available",
    "create",
    "family_of",
    "get",
    "likelihood_of",
    "register",
    "reload_plugins",
    "resolved_options",
    "supports_arch",
    "unregister",
    "upgrade_options",
]
