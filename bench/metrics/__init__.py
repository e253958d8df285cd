"""Metrics for generative autoencoders: reconstruction, latent, generation, sharpness, speed.

``evaluate(model, data, MetricOptions(...))`` runs every family and returns flat names (see
:mod:`bench.metrics.names`) plus a ``meta`` dict; each family is also usable alone, over
tensors and callables, from its own module.

``evaluate``, ``MetricOptions`` and ``format_table`` (from :mod:`bench.metrics.evaluation`) load
on first use: they pull in torchmetrics, torchvision and scipy, about 5 s on the reference CPU,
which a command that only lists models or reports a bad argument must not pay.
"""

from __future__ import annotations

import importlib
from typing import Any

from bench.metrics.names import FAMILIES, METRICS

__all__ = ["FAMILIES", "METRICS", "MetricOptions", "evaluate", "format_table"]

_FROM_EVALUATION = ("MetricOptions", "evaluate", "format_table")


def __getattr__(name: str) -> Any:
    if name in _FROM_EVALUATION:
        return getattr(importlib.import_module("bench.metrics.evaluation"), name)
    raise AttributeError(f"module 'bench.metrics' has no attribute {name!r}")
