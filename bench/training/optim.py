"""A phase's declared optimizer and learning-rate schedule, built as torch objects.

Models declare *what* (``Phase.optimizer``, ``Phase.schedule``: aebench.models.base); this
module builds them, so the trainer never branches on a model. Optimizers and schedules are
:class:`~aebench.core.registry.Registry` entries like every other pluggable thing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import lr_scheduler

from aebench.core.errors import UsageError
from aebench.core.registry import Registry
from aebench.models.base import Phase, Schedule

OptimizerBuilder = Callable[[Phase], torch.optim.Optimizer]
ScheduleBuilder = Callable[[torch.optim.Optimizer, Schedule], lr_scheduler.LRScheduler]

OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")
SCHEDULES: Registry[ScheduleBuilder] = Registry("learning-rate schedule")


@OPTIMIZERS.register("adam")
def _adam(phase: Phase) -> torch.optim.Optimizer:
    """Adam with the fused kernel (one pass over all parameters) where the device has one:
    it trained faster than foreach, PyTorch's default, on the reference CPU (docs/performance.md).
    Elsewhere (dtypes or devices without a fused kernel) foreach."""
    kwargs: dict[str, Any] = dict(lr=phase.lr, betas=phase.betas, weight_decay=phase.weight_decay)
    try:
        return torch.optim.Adam(phase.params, fused=True, **kwargs)
    except RuntimeError:
        return torch.optim.Adam(phase.params, foreach=True, **kwargs)


@OPTIMIZERS.register("adamw")
def _adamw(phase: Phase) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019): weight decay decoupled from the gradient step."""
    return torch.optim.AdamW(
        phase.params, lr=phase.lr, betas=phase.betas, weight_decay=phase.weight_decay
    )


@OPTIMIZERS.register("sgd")
def _sgd(phase: Phase) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        phase.params, lr=phase.lr, momentum=phase.momentum, weight_decay=phase.weight_decay
    )


@OPTIMIZERS.register("rmsprop")
def _rmsprop(phase: Phase) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(
        phase.params, lr=phase.lr, momentum=phase.momentum, weight_decay=phase.weight_decay
    )


@SCHEDULES.register("step")
def _step(opt: torch.optim.Optimizer, s: Schedule) -> lr_scheduler.LRScheduler:
    return lr_scheduler.StepLR(opt, step_size=s.step_size, gamma=s.gamma)


@SCHEDULES.register("multistep")
def _multistep(opt: torch.optim.Optimizer, s: Schedule) -> lr_scheduler.LRScheduler:
    return lr_scheduler.MultiStepLR(opt, milestones=list(s.milestones), gamma=s.gamma)


@SCHEDULES.register("exponential")
def _exponential(opt: torch.optim.Optimizer, s: Schedule) -> lr_scheduler.LRScheduler:
    return lr_scheduler.ExponentialLR(opt, gamma=s.gamma)


@SCHEDULES.register("cosine")
def _cosine(opt: torch.optim.Optimizer, s: Schedule) -> lr_scheduler.LRScheduler:
    return lr_scheduler.CosineAnnealingLR(opt, T_max=s.t_max, eta_min=s.eta_min)


@SCHEDULES.register("warmup")
def _warmup(opt: torch.optim.Optimizer, s: Schedule) -> lr_scheduler.LRScheduler:
    return lr_scheduler.LinearLR(opt, start_factor=s.start_factor, total_iters=s.steps)


def check_phase(phase: Phase, model_name: str) -> None:
    """A phase's declarations, checked before anything is built: one line naming what is
    wrong (a model's bug or a plugin's, but the user sees it first)."""
    where = f"{model_name}: phase {phase.name!r}"
    if phase.optimizer not in OPTIMIZERS:
        known = ", ".join(OPTIMIZERS.names())
        raise UsageError(f"{where}: unknown optimizer {phase.optimizer!r}; choose one of: {known}")
    if not (isinstance(phase.every, int) and phase.every >= 1):
        raise UsageError(f"{where}: every must be a whole number >= 1, got {phase.every!r}")
    if not (math.isfinite(phase.lr) and phase.lr > 0):
        raise UsageError(f"{where}: lr must be a finite number > 0, got {phase.lr!r}")
    s = phase.schedule
    if s is not None:
        if s.kind not in SCHEDULES:
            known = ", ".join(SCHEDULES.names())
            raise UsageError(f"{where}: unknown schedule {s.kind!r}; choose one of: {known}")
        if s.per not in ("step", "epoch"):
            raise UsageError(f"{where}: a schedule steps per 'step' or 'epoch', got {s.per!r}")


#: how a model's phases meet on a batch (GenerativeAutoencoder.update_order)
UPDATE_ORDERS = ("simultaneous", "sequential")


def check_update_order(order: str, model_name: str, phases: list[Phase] | None = None) -> None:
    """The model's ``update_order``, checked in one line like a phase. In the sequential order
    a phase with ``every > 1`` may not compute its own terms (``Phase.terms``): skipped on a
    step, its terms would be missing that step, which the epoch's per-term means (taken over
    every step's images) cannot hold unbiased. Without its own terms the model's loss gives
    every term on every step, as the simultaneous order does."""
    if order not in UPDATE_ORDERS:
        raise UsageError(
            f"{model_name}: update_order must be one of {', '.join(UPDATE_ORDERS)}, got {order!r}"
        )
    sparse = [p.name for p in phases or () if p.every > 1 and p.terms is not None]
    if order == "sequential" and sparse:
        raise UsageError(
            f"{model_name}: phase {sparse[0]!r} has every > 1 and its own terms, which the "
            "sequential update order does not take (its terms would be missing on the steps it "
            "skips); let it use the model's loss, or set every = 1"
        )


def check_batches_per_step(count: object, model_name: str) -> None:
    """The model's ``batches_per_step``: a whole number >= 1, or one line saying it is not."""
    if not (isinstance(count, int) and not isinstance(count, bool) and count >= 1):
        raise UsageError(
            f"{model_name}: batches_per_step must be a whole number >= 1, got {count!r}"
        )


def with_budget_decay(
    phases: list[Phase], milestones: tuple[float, ...], gamma: float, budget_steps: int
) -> list[Phase]:
    """``phases`` with a protocol's decay as their schedule: the learning rate times ``gamma``
    at each fraction of the budget in ``milestones``, placed in each phase's own optimizer
    steps (a phase with ``every = k`` takes a k-th of them). A phase with a schedule of its
    own cannot take a second one: one line saying so."""
    if not milestones:
        return phases
    out = []
    for phase in phases:
        if phase.schedule is not None:
            raise UsageError(
                f"phase {phase.name!r} has its own learning-rate schedule; a protocol's "
                "lr_milestones cannot replace it"
            )
        steps = budget_steps / phase.every
        marks = tuple(max(1, round(m * steps)) for m in milestones)
        schedule = Schedule("multistep", per="step", milestones=marks, gamma=gamma)
        out.append(dataclasses.replace(phase, schedule=schedule))
    return out


def build_optimizer(phase: Phase) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(phase.optimizer)(phase)


def build_schedule(
    phase: Phase, optimizer: torch.optim.Optimizer
) -> lr_scheduler.LRScheduler | None:
    """The phase's schedule on ``optimizer``, or None for a constant learning rate."""
    if phase.schedule is None:
        return None
    return SCHEDULES.get(phase.schedule.kind)(optimizer, phase.schedule)
