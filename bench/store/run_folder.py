"""Saving and loading a trained run: ``model.safetensors`` + ``config.json`` (no pickles).

``config.json`` names the registered model and the keyword arguments that rebuild it, so
``load_run`` is ``models.create(name, **model_config)`` followed by loading the tensors.
Loading never executes code from the files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from aebench import models
from aebench.core import atomic
from aebench.core.errors import UsageError
from aebench.models.base import GenerativeAutoencoder

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
HISTORY = "history.json"


def prepare_out_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) for writing, or raise a one-line :class:`UsageError`."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output path {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create output directory {out}: {err.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"output directory {out} is not writable")
    return out


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON atomically (:mod:`aebench.core.atomic`); tuples, paths and scalar tensors
    allowed."""
    atomic.write_json_atomic(path, payload, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def save_weights(path: Path, model: torch.nn.Module) -> None:
    """Atomically write the model's state dict as safetensors."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic.atomic_write(path, lambda tmp: save_file(tensors, tmp))


def save_run(
    out_dir: Path,
    model: GenerativeAutoencoder,
    config: dict[str, Any],
    history: list[dict[str, Any]] | None = None,
) -> None:
    """Write weights, ``config.json`` (must hold ``model`` and ``model_config``) and history."""
    if "model" not in config or "model_config" not in config:
        raise ValueError("run config needs 'model' and 'model_config'")
    save_weights(out_dir / WEIGHTS, model)
    write_json_atomic(out_dir / CONFIG, config)
    if history is not None:
        write_json_atomic(out_dir / HISTORY, history)


def read_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's ``config.json``; a :class:`UsageError` if the folder is not a run."""
    path = Path(run_dir) / CONFIG
    if not Path(run_dir).is_dir():
        raise UsageError(f"run directory {run_dir} does not exist")
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{run_dir} is not an aebench run: {CONFIG} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"cannot read {path}: {err}") from None
    if not isinstance(config, dict) or "model" not in config or "model_config" not in config:
        raise UsageError(f"{path} is not an aebench run config (needs 'model', 'model_config')")
    if not isinstance(config["model"], str) or not isinstance(config["model_config"], dict):
        raise UsageError(
            f"{path} is damaged: 'model' must be a model name and 'model_config' a table of options"
        )
    return config


def load_run(
    run_dir: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[GenerativeAutoencoder, dict]:
    """Rebuild the model of a saved run and load its weights; returns ``(model, config)``."""
    config = read_config(run_dir)
    try:
        options = models.upgrade_options(config["model"], config["model_config"])
        model = models.create(config["model"], **options)
    except (TypeError, ValueError) as err:  # an unknown keyword; a damaged retired option
        raise UsageError(f"{Path(run_dir) / CONFIG}: model_config does not fit: {err}") from None
    weights = Path(run_dir) / WEIGHTS
    try:
        state = load_file(str(weights), device=str(map_location))
    except FileNotFoundError:
        raise UsageError(f"{run_dir} has no {WEIGHTS}") from None
    except (SafetensorError, OSError) as err:
        raise UsageError(f"cannot read {weights}: {err}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise UsageError(f"{weights} does not match model {config['model']!r}: {first}") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UsageError(
            f"{weights} holds NaN or infinite values in {len(bad)} of {len(state)} tensors "
            f"(first: {bad[0]}): the run diverged or the file is damaged; retrain it"
        )
    model.eval()
    return model.to(map_location), config
