"""Name → model-class registry, in the style of timm's ``register_model``/``create_model``.

Built-in models register themselves with ``@register("name")`` when ``models`` is
imported. Third-party packages add models through the entry-point group
``aebench.models``: each entry point names either a model class (registered under the
entry point's name) or a module whose import registers its own models.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import Any, TypeVar

from bench.errors import UsageError

ENTRY_POINT_GROUP = "aebench.models"

T = TypeVar("T", bound=type)

_REGISTRY: dict[str, tuple[type, dict[str, Any]]] = {}
_plugins_loaded = False


def register(name: str, **defaults: Any) -> Callable[[T], T]:
    """Class decorator: make ``cls`` creatable as ``create(name)``.

    ``defaults`` are keyword arguments applied before the caller's own, so one class can be
    registered twice under different names (``vae`` and ``beta-vae`` with ``beta=4``).
    """

    def wrap(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name][0] is not cls:
            raise ValueError(f"model name {name!r} is already registered by {_REGISTRY[name][0]}")
        _REGISTRY[name] = (cls, dict(defaults))
        return cls

    return wrap


def unregister(name: str) -> None:
    """Remove a registered name (used by tests and by plugins that replace a model)."""
    _REGISTRY.pop(name, None)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if isinstance(obj, type) and ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = (obj, {})


def reload_plugins() -> None:
    """Scan the entry points again (after installing a plugin in a running process)."""
    global _plugins_loaded
    _plugins_loaded = False
    _load_plugins()


def available() -> list[str]:
    """Sorted names of every registered model, plugins included."""
    _load_plugins()
    return sorted(_REGISTRY)


def get(name: str) -> tuple[type, dict[str, Any]]:
    """The class and registered defaults for ``name``; a :class:`UsageError` if unknown."""
    _load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"unknown model {name!r}; registered models: {', '.join(available())}"
        ) from None


def create(name: str, **config: Any) -> Any:
    """Instantiate the model registered as ``name`` with its defaults overridden by ``config``."""
    cls, defaults = get(name)
    return cls(**{**defaults, **config})
