"""Metrics for generative autoencoders: reconstruction, latent, generation, sharpness, speed.

``evaluate(model, data, MetricOptions(...))`` runs every family and returns flat names (see
:mod:`bench.metrics.names`) plus a ``meta`` dict; each family is also usable alone, over
tensors and callables, from its own module.
"""

from __future__ import annotations

from bench.metrics.evaluate import FAMILIES, MetricOptions, evaluate, format_table
from bench.metrics.names import METRICS

__all__ = ["FAMILIES", "METRICS", "MetricOptions", "evaluate", "format_table"]
