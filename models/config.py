"""Typed, validated model configs shared by the built-in models.

Each model folder has its own dataclass deriving from :class:`ModelConfig`; constructing a model
with an unknown or ill-typed option raises a :class:`~bench.errors.UsageError` naming it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from bench.errors import UsageError

C = TypeVar("C", bound="ModelConfig")


@dataclass(frozen=True)
class ModelConfig:
    """Options every built-in model understands."""

    image_shape: tuple[int, int, int] = (1, 28, 28)
    arch: str = "mlp"
    latent_dim: int = 16
    width: int = 32  #: channels of the first conv layer (conv arch)
    hidden: tuple[int, ...] = (512, 256)  #: hidden layer sizes (mlp arch)
    lr: float = 1e-3

    @classmethod
    def from_kwargs(cls: type[C], model: str, kwargs: dict[str, Any]) -> C:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise UsageError(
                f"model {model!r} has no option {unknown[0]!r}; options: {', '.join(sorted(names))}"
            )
        fixed = dict(kwargs)
        for key in ("image_shape", "hidden"):
            if key in fixed and fixed[key] is not None:
                fixed[key] = tuple(int(v) for v in fixed[key])
        cfg = cls(**fixed)
        cfg.validate(model)
        return cfg

    def validate(self, model: str) -> None:
        if not isinstance(self.latent_dim, int) or self.latent_dim < 1:
            raise UsageError(
                f"{model}: latent_dim must be an integer >= 1, got {self.latent_dim!r}"
            )
        if self.lr <= 0:
            raise UsageError(f"{model}: lr must be > 0, got {self.lr!r}")
        if self.width < 1 or any(h < 1 for h in self.hidden):
            raise UsageError(f"{model}: width and hidden sizes must be >= 1")

    def to_json(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }
