"""The feature-backbone registry: name → builder of an ``nn.Module`` that maps images in
[0, 1] to (N, F) features. The built-ins (``domain`` in :mod:`.features`, ``inception`` in
:mod:`.inception`) register here like a plugin would; the registry knows none of them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from torch import nn

from aebench.core.registry import Registry

CACHE_ENV = "AEBENCH_CACHE_DIR"


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """``override``, else ``$AEBENCH_CACHE_DIR``, else ``~/.cache/aebench``."""
    if override is not None:
        return Path(override)
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "aebench"


# -- registry ---------------------------------------------------------------------------------
Builder = Callable[..., nn.Module]
#: backbone name → builder; plugins add theirs through the entry-point group ``aebench.backbones``
BACKBONES: Registry[Builder] = Registry("feature backbone", "aebench.backbones")


def register_backbone(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make ``fn(data, cache=..., device=..., **options) -> nn.Module`` a backbone."""
    return BACKBONES.register(name)  # type: ignore[return-value]


def available() -> list[str]:
    return BACKBONES.names()
