"""Reading and writing weights files without ever unpickling them.

Why this module: a ``.pth`` file is a pickle, and unpickling runs whatever code the file names
(``__reduce__`` → ``os.system``). Every weights file that a user can hand in or that lives in a
folder a user can write — ``--inception-weights``, ``$AEBENCH_INCEPTION_WEIGHTS``, the feature
caches — is read here: safetensors when the file is one, else ``torch.load(weights_only=True)``,
whose restricted unpickler only rebuilds tensors and plain containers. What comes back is a
plain ``{name: tensor}`` dict that the caller hands to ``load_state_dict``; no path ever reaches
a loader that unpickles. aebench writes its own caches as safetensors only.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from aebench.core.atomic import atomic_write
from aebench.core.errors import UsageError

META_KEY = "aebench"


def _is_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte little-endian header length, then ``{``."""
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return 2 <= int.from_bytes(head[:8], "little") <= os.path.getsize(path) - 8


def read_state_dict(
    path: str | os.PathLike[str], what: str = "weights file"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``({name: tensor}, metadata)`` from a safetensors or (tensor-only) torch file.

    Anything else — a pickle that names a global, random bytes, a truncated file, a dict
    holding non-tensors — is a one-line :class:`UsageError` naming ``what`` and the path.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist or is not a file")
    try:
        if _is_safetensors(path):
            with safe_open(str(path), framework="pt", device="cpu") as f:
                raw = (f.metadata() or {}).get(META_KEY)
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            meta = json.loads(raw) if raw else {}
        else:
            with warnings.catch_warnings():  # e.g. "pickle protocol 4": noise for a user
                warnings.simplefilter("ignore")
                state, meta = torch.load(path, map_location="cpu", weights_only=True), {}
    except OSError as err:
        raise UsageError(f"cannot read {what} {path}: {err.strerror or err}") from None
    except Exception as err:  # every parse failure of untrusted bytes is the user's file
        raise UsageError(
            f"{what} {path} is not a safetensors file or a tensor-only PyTorch file "
            f"({type(err).__name__}); refused without running anything in it"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise UsageError(f"{what} {path} does not hold a state dict of named tensors")
    if not isinstance(meta, dict):
        raise UsageError(f"{what} {path} has metadata that is not a JSON object")
    return state, meta


def write_state_dict(
    path: Path, state: dict[str, torch.Tensor], meta: dict[str, Any] | None = None
) -> None:
    """Write ``state`` (plus JSON ``meta``) as safetensors, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    header = {META_KEY: json.dumps(meta)} if meta is not None else None
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def in_memory_file(state: dict[str, torch.Tensor]) -> io.BytesIO:
    """``state`` as an in-memory ``torch.save`` stream of tensors only, for third-party
    constructors that insist on calling ``torch.load`` themselves (torch-fidelity's InceptionV3
    does, with ``weights_only=False``): what they unpickle is then bytes we just made."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
    buffer.seek(0)
    return buffer
