"""How a model is trained: the budget and the settings every model in a comparison shares.

:class:`TrainConfig` is the ``train`` branch of the one config tree
(:class:`aebench.config.run.RunConfig`); the :class:`~aebench.training.trainer.Trainer` reads only
this branch, so the training layer never needs the run config above it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aebench.core.devices import resolve_device
from aebench.core.errors import UsageError
from aebench.core.values import MAX_INT, describe, is_int, is_real

BUDGET_KINDS: tuple[str, ...] = ("epochs", "steps", "seconds")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Budget:
    """How long a model trains: ``epochs``, optimizer ``steps`` or wall-clock ``seconds``.

    A suite has one kind, so every model gets the same allowance and comparisons stay fair.
    """

    kind: str
    value: int | float

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: self.value}

    def train_fields(self) -> dict[str, Any]:
        """The :class:`TrainConfig` fields that express this budget."""
        if self.kind == "epochs":
            return {"epochs": int(self.value)}
        if self.kind == "steps":
            return {"epochs": None, "max_steps": int(self.value)}
        return {"epochs": None, "max_seconds": float(self.value)}

    def __str__(self) -> str:
        return f"{self.value:g} {self.kind}"


@dataclass(frozen=True)
class TrainConfig:
    """How long and how to train; the same for every model in a comparison."""

    epochs: int | None = 10  #: None: no epoch limit (the budget is in steps or seconds)
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    max_steps: int | None = None  #: stop after this many optimizer steps (budget in steps)
    max_seconds: float | None = None  #: stop after this wall-clock time (checked per epoch)
    grad_clip: float | None = None  #: clip each phase's gradient norm to this value
    #: a protocol's learning-rate decay: at each of these fractions of the training budget
    #: every phase's learning rate is multiplied by ``lr_gamma`` (empty: the models' own)
    lr_milestones: tuple[float, ...] = ()
    lr_gamma: float = 1.0
    #: progress bar off; how a run is shown, not what it computes (not stored, not compared)
    quiet: bool = field(default=False, compare=False)
    # Speed options, their defaults and the measurements behind them: docs/performance.md.
    # channels_last: on for conv nets on CUDA only (no gain on the reference CPU); compile: off
    # (slower on a CPU); bf16: off, so that quality numbers do not depend on the hardware. Each
    # is a switch so a user can measure it on their own device.
    precision: str = "fp32"  #: "bf16": forward and loss under bfloat16 autocast
    #: NHWC memory format for the model and every batch; None: on for conv nets on CUDA
    channels_last: bool | None = None
    compile: bool = False  #: torch.compile the model's loss (forward) before training
    #: forward of ConvTranspose2d layers with <= 4 output channels on PyTorch's native kernel
    #: instead of oneDNN (bench/training/thin_deconv.py); None: on for CPU training without compile
    native_thin_deconv: bool | None = None

    @property
    def budget(self) -> Budget:
        """The budget these fields express (steps, then seconds, then epochs)."""
        if self.max_steps is not None:
            return Budget("steps", self.max_steps)
        if self.max_seconds is not None:
            return Budget("seconds", self.max_seconds)
        return Budget("epochs", self.epochs or 0)

    @property
    def epoch_limit(self) -> int:
        """The last epoch to train: ``epochs``, or no practical limit for a step/time budget."""
        return self.epochs if self.epochs is not None else 10**9

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise UsageError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        # 2**32 - 1 at most, as a suite's seeds: the seeds derived from it (an epoch's data
        # order, a stage's seed) must stay within torch's 64-bit generator seed
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise UsageError(
                f"seed must be an integer from 0 to 2**32 - 1, got {describe(self.seed)}"
            )
        if self.epochs is None and self.max_steps is None and self.max_seconds is None:
            raise UsageError("a training budget is needed: epochs, steps or seconds")
        counts = (("epochs", self.epochs), ("batch size", self.batch_size))
        for name, count in (*counts, ("max_steps", self.max_steps)):
            if (count is not None or name == "batch size") and not count_ok(count):
                raise UsageError(
                    f"{name} must be an integer from 1 to 2**63 - 1, got {describe(count)}"
                )
        for name, amount in (("max_seconds", self.max_seconds), ("grad_clip", self.grad_clip)):
            if amount is not None and (not is_real(amount) or amount <= 0):
                raise UsageError(f"{name} must be a finite number > 0, got {describe(amount)}")
        self._validate_lr_decay()
        resolve_device(self.device)

    def _validate_lr_decay(self) -> None:
        """Milestones are fractions in (0, 1), in order; a decay needs a budget in steps or
        epochs (a wall-clock budget has no step count to place them at)."""
        marks = self.lr_milestones
        if not all(is_real(m) and 0 < m < 1 for m in marks) or list(marks) != sorted(marks):
            raise UsageError(f"lr_milestones must be increasing fractions in (0, 1), got {marks}")
        if not (is_real(self.lr_gamma) and 0 < self.lr_gamma <= 1):
            raise UsageError(f"lr_gamma must be in (0, 1], got {describe(self.lr_gamma)}")
        if marks and self.max_seconds is not None and self.max_steps is None:
            raise UsageError("lr_milestones need a budget in epochs or steps, not seconds")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.compare}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown training setting {unknown[0]!r}")
        fields = dict(data)
        if "lr_milestones" in fields:  # JSON gives a list
            fields["lr_milestones"] = tuple(fields["lr_milestones"])
        return cls(**fields)


def count_ok(value: Any) -> bool:
    """An integer from 1 to 2**63 - 1: what a step or epoch counter (int64) can hold."""
    return is_int(value) and 1 <= value <= MAX_INT
