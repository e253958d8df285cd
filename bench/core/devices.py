"""Devices and seeds: which torch device a name means, and one call that seeds every RNG."""

from __future__ import annotations

import random

import numpy as np
import torch

from aebench.core.errors import UsageError


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; asking for absent CUDA is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r} requested but CUDA is not available here")
        return torch.device(name)
    raise UsageError(f"unknown device {name!r}; choose auto, cpu or cuda")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def is_allocation_failure(err: BaseException) -> bool:
    """Whether ``err`` is a failed memory allocation: Python's ``MemoryError``, or torch's
    allocators' ``RuntimeError`` (CPU: "can't allocate memory"; CUDA's ``OutOfMemoryError``:
    "out of memory ... Tried to allocate"), which callers turn into one line."""
    if isinstance(err, MemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("alloc" in text or "out of memory" in text)
