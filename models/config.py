"""Typed, validated model configs shared by the built-in models.

Each model folder has its own dataclass deriving from :class:`ModelConfig`. Every way an option
reaches a model — ``aebench train -o KEY=VALUE``, a suite's TOML, a run's ``config.json`` — goes
through :meth:`ModelConfig.from_kwargs`, which checks each value against the type of its default
(:func:`check_option`) and then the model's own ranges (``validate``). One validator, so the
command line and the suite parser cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from aebench.core.errors import UsageError
from aebench.core.values import MAX_INT, describe, is_int, is_real

C = TypeVar("C", bound="ModelConfig")

#: Options fixed by the run itself (the dataset's image shape, ``--arch``, ``--latent-dim`` or
#: the suite grid), never by a per-model option: two sources for one value would disagree.
GRID_OPTIONS: frozenset[str] = frozenset({"image_shape", "arch", "latent_dim"})
#: Upper bounds that catch typos (``--latent-dim 1000000000``) before any memory is allocated.
MAX_LATENT_DIM = 65_536
MAX_LAYER_WIDTH = 65_536


class OptionError(UsageError):
    """A bad model option; ``key`` names it so a suite can point at the TOML key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def option_from_text(key: str, raw: str, kind: str = "option") -> Any:
    """A command-line ``KEY=VALUE``'s VALUE: read as JSON when it parses (numbers, lists,
    true/false), else the text itself. A number with more digits than Python converts is an
    :class:`OptionError` naming the ``kind`` and ``key`` (``model option lr``), not a
    traceback."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return raw
    except ValueError:  # int('9' * 5000): more digits than sys.get_int_max_str_digits()
        limit = sys.get_int_max_str_digits()
        raise OptionError(
            key, f"{kind} {key}: a number of more than {limit:,} digits ({len(raw):,} given)"
        ) from None


def check_option(key: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of ``default`` (an int is accepted for a float);
    returns it in that type (lists for tuples). Raises :class:`OptionError` naming ``key``."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise OptionError(key, f"option {key} must be true or false, got {describe(value)}")
        return value
    if isinstance(default, int):
        if not is_int(value):
            raise OptionError(key, f"option {key} must be an integer, got {describe(value)}")
        return _int64(key, value)
    if isinstance(default, float):
        if not is_real(value):
            raise OptionError(key, f"option {key} must be a finite number, got {describe(value)}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise OptionError(key, f"option {key} must be a string, got {describe(value)}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or not value:
            raise OptionError(key, f"option {key} must be a non-empty array, got {describe(value)}")
        for i, item in enumerate(value):
            if not is_int(item):
                raise OptionError(
                    f"{key}[{i}]", f"option {key}[{i}] must be an integer, got {describe(item)}"
                )
        return [_int64(f"{key}[{i}]", v) for i, v in enumerate(value)]
    return value


def _int64(key: str, value: int) -> int:
    """``value`` if an int64 holds it (what a model's tensors can use), else an OptionError."""
    if abs(value) > MAX_INT:
        raise OptionError(
            key, f"option {key} must be from -(2**63 - 1) to 2**63 - 1, got {describe(value)}"
        )
    return int(value)


@dataclass(frozen=True)
class ModelConfig:
    """Options every built-in model understands."""

    image_shape: tuple[int, int, int] = (1, 28, 28)
    arch: str = "mlp"
    latent_dim: int = 16
    width: int = 32  #: channels of the first conv layer (arch conv only)
    hidden: tuple[int, ...] = (512, 256)  #: hidden layer sizes (arch mlp only)
    lr: float = 1e-3

    #: options a model had once and has no more → what replaced them (the refusal says so)
    RETIRED_OPTIONS: ClassVar[dict[str, str]] = {}

    @classmethod
    def upgrade_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` a run recorded with an older aebench, in today's names and meanings
        (every option given, as a run's resolved options or a model's ``config.json`` hold
        them). A model that retired an option maps it here; the default keeps them as they
        are."""
        return dict(options)

    @property
    def likelihood(self) -> str:
        """The family of the decoder likelihood p(x|z) that a model's ELBO and NLL are measured
        under ("bernoulli", "gaussian"), or "" for none. Those numbers are in that family's
        units: a Gaussian's nats are of a density over continuous pixels, a Bernoulli's of a
        probability, so reports compare them only between models of one likelihood."""
        return ""

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def from_kwargs(cls: type[C], model: str, kwargs: dict[str, Any]) -> C:
        defaults = cls.defaults()
        unknown = sorted(set(kwargs) - set(defaults))
        if unknown:
            retired = cls.RETIRED_OPTIONS.get(unknown[0])
            known = f"options: {', '.join(sorted(defaults))}"
            raise OptionError(
                unknown[0],
                f"model {model!r} has no option {unknown[0]!r}; {retired or known}",
            )
        try:
            fixed = {k: check_option(k, v, defaults[k]) for k, v in kwargs.items()}
        except OptionError as err:
            raise OptionError(err.key, f"{model}: {err}") from None
        for key, value in fixed.items():
            if isinstance(defaults[key], tuple):  # arrays (hidden, image_shape, ...) stay tuples
                fixed[key] = tuple(value)
        cfg = cls(**fixed)
        cfg.validate(model)
        return cfg

    def _check_fixed_size_arch(self, model: str) -> None:
        """A paper's net (``models/literature_nets.py``: every arch but mlp and conv) has the
        paper's sizes, so a width or hidden other than the default would be silently ignored."""
        if self.arch in ("mlp", "conv"):
            return
        fields = {f.name: f.default for f in dataclasses.fields(type(self))}
        for key in ("width", "hidden"):
            value = getattr(self, key)
            if (tuple(value) if isinstance(value, list) else value) != fields[key]:
                raise OptionError(
                    key,
                    f"{model}: {key} sizes the mlp and conv nets; arch {self.arch!r} is a "
                    f"paper's net of fixed size, got {key}={value!r}",
                )

    def validate(self, model: str) -> None:
        if not 1 <= self.latent_dim <= MAX_LATENT_DIM:
            raise OptionError(
                "latent_dim",
                f"{model}: latent_dim must be 1 to {MAX_LATENT_DIM}, got {self.latent_dim}",
            )
        if self.lr <= 0:
            raise OptionError("lr", f"{model}: lr must be > 0, got {self.lr!r}")
        for key, sizes in (("width", (self.width,)), ("hidden", self.hidden)):
            if any(not 1 <= s <= MAX_LAYER_WIDTH for s in sizes):
                sizes_text = f"got {getattr(self, key)!r}"
                raise OptionError(
                    key,
                    f"{model}: {key} sizes must be 1 to {MAX_LAYER_WIDTH}, {sizes_text}",
                )
        self._check_fixed_size_arch(model)
        c, h, w = self.image_shape if len(self.image_shape) == 3 else (0, 0, 0)
        if not (1 <= c <= 4 and 1 <= h <= 4096 and 1 <= w <= 4096):
            raise OptionError(
                "image_shape",
                f"{model}: image_shape must be [channels 1-4, height, width 1-4096], "
                f"got {list(self.image_shape)}",
            )

    def require(self, model: str, checks: tuple[tuple[str, bool, str], ...]) -> None:
        """Raise an :class:`OptionError` for the first ``(key, ok, wanted)`` that is not ok:
        "MODEL: KEY must be WANTED, got VALUE"."""
        for key, ok, want in checks:
            if not ok:
                raise OptionError(key, f"{model}: {key} must be {want}, got {getattr(self, key)!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def config_class_of(model_cls: type) -> type | None:
    """The ModelConfig dataclass a model validates its options with, if it has one.

    Prefers an explicit ``config_class`` attribute; otherwise the most derived
    :class:`~aebench.models.config.ModelConfig` subclass visible in the model's module.
    """
    explicit = getattr(model_cls, "config_class", None)
    if isinstance(explicit, type):
        return explicit
    module = sys.modules.get(model_cls.__module__)
    found = (
        [
            v
            for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, ModelConfig) and dataclasses.is_dataclass(v)
        ]
        if module
        else []
    )
    for cand in found:
        if all(issubclass(cand, other) for other in found):
            return cand
    return None
