"""A model's training stages, in order: its own (the :class:`Trainer` on the model), then each
:class:`~aebench.models.base.Stage` it declares, trained by the same :class:`Trainer` on the
stage's inputs, with its own budget, seed stream, checkpoint file, history rows and progress
bar. A run stopped in any stage resumes there: the finished stages restore from their final
checkpoints and train nothing more."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from aebench.core.errors import UsageError
from aebench.data import ImageData
from aebench.models.base import GenerativeAutoencoder, Stage
from aebench.training.checkpoint import load_checkpoint
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer

#: each stage's seed is the run's plus this times its index (stage 1 keeps the run's own),
#: modulo 2**32 so that it stays a seed TrainConfig accepts
STAGE_SEED_STRIDE = 1_000_003


def stage_settings(config: TrainConfig, index: int, stage: Stage) -> TrainConfig:
    """Stage ``index``'s (2, 3, …) training settings: ``stage.budget`` times the run's budget
    (at least one epoch or step) and a seed of its own."""
    scaled: dict[str, Any] = {"seed": (config.seed + STAGE_SEED_STRIDE * (index - 1)) % 2**32}
    if config.max_steps is not None:
        scaled["max_steps"] = max(1, math.ceil(config.max_steps * stage.budget))
    elif config.max_seconds is not None:
        scaled["max_seconds"] = config.max_seconds * stage.budget
    elif config.epochs is not None:
        scaled["epochs"] = max(1, math.ceil(config.epochs * stage.budget))
    return dataclasses.replace(config, **scaled)


def stage_checkpoint(checkpoint: Path | None, stage: Stage) -> Path | None:
    """``run/checkpoint.safetensors`` → ``run/checkpoint.STAGE.safetensors``."""
    if checkpoint is None:
        return None
    return checkpoint.with_name(f"{checkpoint.stem}.{stage.name}{checkpoint.suffix}")


def fit_stages(
    model: GenerativeAutoencoder,
    data: ImageData,
    config: TrainConfig,
    model_name: str,
    checkpoint: Path | None = None,
    resume: bool = False,
) -> tuple[list[dict[str, Any]], torch.device]:
    """Train ``model`` and then each of its stages; return the history of all of them (a
    later stage's rows carry ``"stage"``) and the training device."""
    if resume:
        _refuse_extending_a_begun_stage(model, config, checkpoint)
    first = Trainer(model, data, config, model_name=model_name, checkpoint=checkpoint)
    history = first.fit(resume=resume)
    for index, stage in enumerate(model.stages(), start=2):
        trainer = Trainer(
            stage.module,
            data,
            stage_settings(config, index, stage),
            model_name=f"{model_name}:{stage.name}",
            checkpoint=stage_checkpoint(checkpoint, stage),
            inputs=stage.inputs,
        )
        rows = trainer.fit(resume=resume)
        history += [{**row, "stage": stage.name} for row in rows]
    model.eval()
    return history, first.device


def _refuse_extending_a_begun_stage(
    model: GenerativeAutoencoder, config: TrainConfig, checkpoint: Path | None
) -> None:
    """A larger budget for a run whose later stage has begun would train stage 1 on after
    stage 2 trained on its codes: a run of neither length. One line, before anything trains
    (while stage 1 is unfinished the whole run may still grow). Stage 1's own planned epochs
    decide, since a later stage's, rounded up from a share of them, may not change."""
    begun = [s for s in model.stages() if (p := stage_checkpoint(checkpoint, s)) and p.is_file()]
    if not begun or checkpoint is None or not checkpoint.is_file():
        return
    was = (load_checkpoint(checkpoint)[1].get("train") or {}).get("epochs")
    if was != config.epochs:
        raise UsageError(
            f"stage {begun[0].name!r} of this run has begun, on a run of {was} epochs: a run "
            f"of {config.epochs} would train stage 1 on after it; resume with the original "
            "--epochs, or pass --overwrite to train the longer run from the start"
        )
