"""aebench: datasets, the training harness, metrics, runners, store and CLI."""

from __future__ import annotations

__version__ = "0.1.0"
