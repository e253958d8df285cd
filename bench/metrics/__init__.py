"""Metrics for generative autoencoders, as registered families: reconstruction, latent,
generation, sharpness, speed — plus any a plugin registers.

``evaluate(model, data, MetricOptions(...))`` runs every family that applies and returns flat
names plus a ``meta`` dict. A family (:class:`MetricFamily`) declares its keys
(:class:`MetricKey`: name, label, unit, direction), the models it applies to, the options it
reads and how it computes; add one with :func:`register_family` (docs/extending.md).

``METRICS`` (key → description) and ``FAMILIES`` (names in order) are read from the registry.
``evaluate``, ``MetricOptions`` and ``format_table`` (from :mod:`aebench.metrics.evaluation`) load
on first use: they pull in torchmetrics, torchvision and scipy, about 5 s on the reference CPU,
which a command that only lists models or reports a bad argument must not pay.
"""

from __future__ import annotations

import importlib
from typing import Any

# the shared options first (they reserve their names), then the built-in families, so both
# are in place before any plugin family registers (plugins load on first lookup)
from aebench.metrics import options as _options  # noqa: F401

from aebench.metrics import families as _builtin_families  # noqa: F401  isort: skip
from aebench.metrics.context import EvalContext
from aebench.metrics.family import MetricFamily, MetricKey, all_keys, family_names, register_family

__all__ = [
    "FAMILIES",
    "METRICS",
    "EvalContext",
    "MetricFamily",
    "MetricKey",
    "MetricOptions",
    "evaluate",
    "format_table",
    "register_family",
]

_FROM_EVALUATION = ("MetricOptions", "evaluate", "format_table")


def __getattr__(name: str) -> Any:
    if name in _FROM_EVALUATION:
        return getattr(importlib.import_module("aebench.metrics.evaluation"), name)
    if name == "METRICS":
        return {k: key.description for k, key in all_keys().items()}
    if name == "FAMILIES":
        return family_names()
    raise AttributeError(f"module 'aebench.metrics' has no attribute {name!r}")
