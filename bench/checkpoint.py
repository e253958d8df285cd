"""Crash-safe training checkpoints: one safetensors file, tensors + JSON metadata, atomic.

Why one file: the weights, every optimizer's state, the RNG states and the loop position must
change together; a safetensors file carries tensors plus a string→string metadata header, so the
JSON part rides inside it and a single ``rename`` publishes both. Loading never runs pickled code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from bench.atomic import atomic_write
from bench.errors import UsageError

FORMAT = 1
META_KEY = "aebench"


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``tensors`` and JSON ``meta`` to ``path`` atomically (temp file, fsync, rename)."""
    payload = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {META_KEY: json.dumps({"format": FORMAT, **meta})}
    atomic_write(path, lambda tmp: save_file(payload, tmp, metadata=header))


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint; a one-line :class:`UsageError` for a truncated or foreign file."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = (f.metadata() or {}).get(META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except FileNotFoundError:
        raise UsageError(f"no checkpoint at {path}") from None
    except (SafetensorError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(
            f"checkpoint {path} is unreadable (truncated or corrupt?): {first}"
        ) from None
    if raw is None:
        raise UsageError(f"{path} is not an aebench checkpoint (no aebench metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise UsageError(f"checkpoint {path} has corrupt metadata") from None
    if meta.get("format") != FORMAT:
        raise UsageError(f"checkpoint {path} has format {meta.get('format')!r}, expected {FORMAT}")
    return tensors, meta
