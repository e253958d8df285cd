"""A training step to measure, not to train: one step of the real :class:`Trainer` on a copy
of a model, so the speed metrics time exactly what training runs while the weights they report
on stay untouched. The layers above hand it to :func:`aebench.metrics.evaluate`."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from aebench.data import ImageData
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer


def step_on_copy(
    model: torch.nn.Module, data: ImageData, batch_size: int
) -> Callable[[torch.Tensor], Any]:
    """``Trainer.train_step`` of a deep copy of ``model`` on its device, in training mode."""
    clone = copy.deepcopy(model)
    device = next(iter(clone.parameters())).device
    trainer = Trainer(
        clone, data, TrainConfig(batch_size=batch_size, device=str(device), quiet=True)
    )
    clone.train()
    return trainer.train_step
