"""Name → model-class registry, in the style of timm's ``register_model``/``create_model``.

Built-in models register themselves with ``@register("name")`` when ``models`` is imported.
Third-party packages add models through the entry-point group ``aebench.models``: each entry
point names either a model class (registered under the entry point's name) or a module whose
import registers its own models. The registry itself is the one generic
:class:`aebench.core.registry.Registry` that datasets, samplers, backbones and metric families
use too.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aebench.core.errors import UsageError
from aebench.core.registry import Registry
from aebench.models.config import GRID_OPTIONS, OptionError, check_option, config_class_of

ENTRY_POINT_GROUP = "aebench.models"

T = TypeVar("T", bound=type)

#: model name → the class and the defaults registered with it
MODELS: Registry[type] = Registry("model", ENTRY_POINT_GROUP)
_DEFAULTS: dict[str, dict[str, Any]] = {}


def register(name: str, **defaults: Any) -> Callable[[T], T]:
    """Class decorator: make ``cls`` creatable as ``create(name)``.

    ``defaults`` are keyword arguments applied before the caller's own, so one class can be
    registered twice under different names (``vae`` and ``beta-vae`` with ``beta=2``).
    """

    def wrap(cls: T) -> T:
        MODELS.register(name, cls)
        _DEFAULTS[name] = dict(defaults)
        return cls

    return wrap


def unregister(name: str) -> None:
    """Remove a registered name (used by tests and by plugins that replace a model)."""
    MODELS.unregister(name)
    _DEFAULTS.pop(name, None)


def reload_plugins() -> None:
    """Scan the entry points again (after installing a plugin in a running process)."""
    MODELS.load_plugins(reload=True)


def available() -> list[str]:
    """Sorted names of every registered model, plugins included."""
    return MODELS.names()


def get(name: str) -> tuple[type, dict[str, Any]]:
    """The class and registered defaults for ``name``; a :class:`UsageError` if unknown."""
    return MODELS.get(name), dict(_DEFAULTS.get(name, {}))


def create(name: str, **config: Any) -> Any:
    """Instantiate the model registered as ``name`` with its defaults overridden by ``config``.

    A model with a config class validates its own options (``ModelConfig.from_kwargs``). One
    without (a plugin's plain constructor) has them checked here against its constructor's
    keyword parameters, so an unknown option or a value of the wrong type is one
    :class:`OptionError` line, not a ``TypeError`` from inside the model; the grid options
    (arch, latent size, image shape) are passed only where the constructor takes them."""
    cls, defaults = get(name)
    kwargs = {**defaults, **config}
    if config_class_of(cls) is None:
        kwargs = _checked_by_signature(name, cls, kwargs)
    return cls(**kwargs)


def _checked_by_signature(name: str, cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs  # takes anything: the model checks its own options
    named = {k: p for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    out = {}
    for key, value in kwargs.items():
        if key not in named:
            if key in GRID_OPTIONS:
                continue
            known = ", ".join(sorted(set(named) - GRID_OPTIONS)) or "(none)"
            raise OptionError(key, f"model {name!r} has no option {key!r}; options: {known}")
        default = named[key].default
        has_default = default is not inspect.Parameter.empty and default is not None
        out[key] = check_option(key, value, default) if has_default else value
    return out


def supports_arch(name: str, arch: str) -> bool:
    """Whether model ``name`` can be built on backbone ``arch`` (its class's ``archs``)."""
    archs = getattr(get(name)[0], "archs", None)
    return archs is None or arch in archs


def family_of(name: str | None) -> str:
    """The family model ``name`` declares (``models.base.FAMILIES``); "" for a model that
    does not say or is not registered in this process."""
    if not name or name not in MODELS:
        return ""
    family = getattr(get(name)[0], "family", "")
    return family if isinstance(family, str) else ""


def likelihood_of(name: str | None, options: Mapping[str, Any]) -> str:
    """The decoder likelihood family a run of model ``name`` with ``options`` (its stored
    resolved options) declares (:attr:`ModelConfig.likelihood`), or "" where it cannot say:
    a model not registered in this process, one without a config class, or options that no
    longer validate. Options the config no longer has are left out."""
    if not name or name not in MODELS:
        return ""
    config_cls = config_class_of(get(name)[0])
    if config_cls is None:
        return ""
    known = config_cls.defaults()
    kept = {k: v for k, v in options.items() if k in known and k not in GRID_OPTIONS}
    try:
        return str(config_cls.from_kwargs(name, {**get(name)[1], **kept}).likelihood)
    except (UsageError, TypeError, ValueError):  # a hand-edited store: say nothing
        return ""


def upgrade_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of a run of model ``name`` recorded by an older aebench (its resolved
    options, a ``config.json``'s ``model_config``), in today's names and meanings
    (:meth:`ModelConfig.upgrade_options`); as they are for a model not registered here or
    without a config class."""
    if name not in MODELS:
        return dict(options)
    config_cls = config_class_of(get(name)[0])
    return dict(options) if config_cls is None else config_cls.upgrade_options(options)


def resolved_options(name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every option model ``name`` trains with, defaults included: its config class's defaults
    (or, without one, its constructor's keyword defaults), then the defaults registered with
    the name, then ``overrides``; as JSON values (tuples as lists), sorted, the grid options
    (arch, latent size, image shape) left out. What a run's identity hashes, so changing a
    registered default changes the hash of a run that did not set the option."""
    cls, registered = get(name)
    config_cls = config_class_of(cls)
    if config_cls is not None:
        base = config_cls.defaults()
    else:
        params = inspect.signature(cls).parameters.values()
        base = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    merged = {**base, **registered, **dict(overrides)}
    return {k: json.loads(json.dumps(merged[k])) for k in sorted(merged) if k not in GRID_OPTIONS}
