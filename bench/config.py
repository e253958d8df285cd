"""The one config tree: a :class:`RunConfig` nests a :class:`TrainConfig` and a
:class:`~aebench.metrics.options.MetricOptions`.

::

    RunConfig            what is trained: model, options, dataset, arch, latent size
    ├── train: TrainConfig      how: budget (epochs | steps | seconds), batch, seed, device,
    │                           precision and the other speed switches
    └── metrics: MetricOptions  how it is measured (bench/metrics/options.py)

``aebench train`` builds one from its flags, a suite expands into one per grid point, and the
store, the run folder's ``config.json`` and ``aebench eval`` read it back with
:meth:`RunConfig.from_dict` — one conversion each way, no field copied into another class.
:meth:`RunConfig.config_hash` hashes what changes the trained weights, so the store can tell
that a run is already done even if the suite was renamed or reordered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aebench.errors import UsageError
from aebench.metrics.options import MetricOptions
from aebench.models.config import MAX_INT, describe, is_int, is_real

BUDGET_KINDS: tuple[str, ...] = ("epochs", "steps", "seconds")
PRECISIONS = ("fp32", "bf16")
#: Bump when the meaning of the hashed fields changes, so old hashes stop matching.
HASH_VERSION = 2


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
    #: progress bar off; how a run is shown, not what it computes (not stored, not compared)
    quiet: bool = field(default=False, compare=False)
    # Speed options (docs/performance.md): channels_last defaults to on for conv nets on CUDA only
    # (on the 2-core reference CPU, once the allocator stopped page-faulting, NHWC measured
    # 0.95-1.04x NCHW: no gain worth a second layout); compile is off (slower on CPU); bf16 is
    # off so that quality numbers do not depend on the hardware, though on CPUs with AMX it
    # trains 1.3-1.6x faster. Each is a switch so a user can measure it on their own device.
    precision: str = "fp32"  #: "bf16": forward and loss under bfloat16 autocast
    #: NHWC memory format for the model and every batch; None: on for conv nets on CUDA
    channels_last: bool | None = None
    compile: bool = False  #: torch.compile the model's loss (forward) before training
    #: forward of ConvTranspose2d layers with <= 4 output channels on PyTorch's native kernel
    #: instead of oneDNN (bench/thin_deconv.py); None: on for CPU training without compile
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
        from aebench.trainer import resolve_device

        if self.precision not in PRECISIONS:
            raise UsageError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise UsageError(
                f"seed must be an integer from 0 to 2**63 - 1, got {describe(self.seed)}"
            )
        if self.epochs is None and self.max_steps is None and self.max_seconds is None:
            raise UsageError("a training budget is needed: epochs, steps or seconds")
        counts = (("epochs", self.epochs), ("batch size", self.batch_size))
        for name, count in (*counts, ("max_steps", self.max_steps)):
            if (count is not None or name == "batch size") and not _count(count):
                raise UsageError(
                    f"{name} must be an integer from 1 to 2**63 - 1, got {describe(count)}"
                )
        for name, amount in (("max_seconds", self.max_seconds), ("grad_clip", self.grad_clip)):
            if amount is not None and (not is_real(amount) or amount <= 0):
                raise UsageError(f"{name} must be a finite number > 0, got {describe(amount)}")
        resolve_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.compare}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown training setting {unknown[0]!r}")
        return cls(**dict(data))


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to reproduce one training + evaluation; a plain, hashable value.

    ``suite``, ``label`` and ``data_dir`` are bookkeeping and do not enter :attr:`config_hash`:
    renaming a suite or moving the data does not change a run's numbers, so it is the same run.
    """

    model: str
    dataset: str = "mnist-5k"
    arch: str = "mlp"
    latent_dim: int = 16
    model_options: tuple[tuple[str, Any], ...] = ()  #: sorted (name, value); lists as tuples
    train: TrainConfig = field(default_factory=TrainConfig)
    metrics: MetricOptions = field(default_factory=MetricOptions)
    suite: str = "train"  #: the suite it belongs to (``train`` for ``aebench train``)
    label: str = ""  #: the model's column name; "" means the model's name
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.model)
        if isinstance(self.model_options, Mapping):
            object.__setattr__(self, "model_options", freeze_options(self.model_options))

    # -- derived ------------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return self.train.seed

    @property
    def options(self) -> dict[str, Any]:
        """The model option overrides as a dict (lists, not tuples)."""
        return {k: _thaw(v) for k, v in self.model_options}

    @property
    def run_name(self) -> str:
        """Readable, unique within a suite: ``vae-mnist-5k-conv-s0``."""
        return f"{self.label}-{self.dataset}-{self.arch}-s{self.seed}"

    def evaluation_options(self, metrics: MetricOptions | None = None) -> MetricOptions:
        """The options this run is evaluated with (``metrics`` or its own), the seed and
        training batch size filled in from its training config where they are unset."""
        opts = metrics or self.metrics
        return dataclasses.replace(
            opts,
            seed=self.train.seed if opts.seed is None else opts.seed,
            train_batch_size=(
                self.train.batch_size if opts.train_batch_size is None else opts.train_batch_size
            ),
        )

    def identity(self) -> dict[str, Any]:
        """The fields that change the trained weights (what :attr:`config_hash` hashes).

        Metric options are not among them: they are recorded with each metric result (the
        store's ``evaluations``), so a new or re-optioned metric reaches finished runs through
        ``aebench eval --store`` instead of retraining them. (Hash version 1 included them.)
        Speed switches enter only when set away from their defaults, so the hashes of runs
        from before they could be set stay valid.
        """
        defaults = TrainConfig().to_dict()
        speed = ("grad_clip", "precision", "channels_last", "compile", "native_thin_deconv")
        out: dict[str, Any] = {
            "v": HASH_VERSION,
            "model": self.model,
            "model_options": self.options,
            "dataset": self.dataset,
            "arch": self.arch,
            "seed": self.train.seed,
            "budget": self.train.budget.to_dict(),
            "batch_size": self.train.batch_size,
            "latent_dim": self.latent_dim,
            "device": self.train.device,
        }
        out.update({k: v for k in speed if (v := getattr(self.train, k)) != defaults[k]})
        return out

    @property
    def config_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of :meth:`identity`: stable across processes."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def short_hash(self) -> str:
        return self.config_hash[:12]

    def model_kwargs(self, image_shape: tuple[int, ...]) -> dict[str, Any]:
        """Keyword arguments for ``models.create(cfg.model, **kwargs)`` on data of this shape:
        the grid point's arch and latent size, then the model options (a suite refuses options
        that would override them)."""
        return {
            "arch": self.arch,
            "latent_dim": self.latent_dim,
            "image_shape": list(image_shape),
            **self.options,
        }

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` inverts it exactly."""
        return {
            "suite": self.suite,
            "model": self.model,
            "label": self.label,
            "dataset": self.dataset,
            "arch": self.arch,
            "latent_dim": self.latent_dim,
            "model_options": self.options,
            "data_dir": self.data_dir,
            "train": self.train.to_dict(),
            "metrics": self.metrics.to_dict(),
            "config_hash": self.config_hash,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Rebuild a config stored by :meth:`to_dict` (the store, a run folder's config).

        Also reads the flat layout stores held before the config tree (``budget``,
        ``batch_size``, ``seed``, ``device`` at the top). Raises :class:`UsageError` if the
        data is malformed or was edited so that its recorded hash no longer matches.
        """
        try:
            if "train" in data:
                train = TrainConfig.from_dict(dict(data["train"]))
            else:  # the flat layout of stores written before 2026-12-01
                (kind, value), *rest = dict(data["budget"]).items()
                if rest or kind not in BUDGET_KINDS:
                    raise ValueError(f"bad budget {data['budget']!r}")
                budget = Budget(kind, float(value) if kind == "seconds" else int(value))
                train = TrainConfig(
                    batch_size=int(data["batch_size"]),
                    seed=int(data["seed"]),
                    device=str(data.get("device", "auto")),
                    **budget.train_fields(),
                )
            cfg = cls(
                suite=str(data["suite"]),
                model=str(data["model"]),
                label=str(data.get("label", data["model"])),
                dataset=str(data["dataset"]),
                arch=str(data["arch"]),
                latent_dim=int(data["latent_dim"]),
                model_options=freeze_options(dict(data.get("model_options", {}))),
                train=train,
                metrics=MetricOptions.from_dict(dict(data.get("metrics", {}))),
                data_dir=None if data.get("data_dir") is None else str(data["data_dir"]),
            )
        except UsageError as err:
            raise UsageError(f"malformed run config: {err}") from None
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
            raise UsageError(f"malformed run config: {err!r}") from None
        recorded = data.get("config_hash")
        if recorded is not None and recorded != cfg.config_hash:
            raise UsageError(
                f"run config {cfg.run_name}: recorded hash {str(recorded)[:12]} does not match "
                f"its fields ({cfg.short_hash}); the config was edited"
            )
        return cfg

    @classmethod
    def from_json(cls, text: str | bytes) -> RunConfig:
        try:
            data = json.loads(text)
        except (ValueError, TypeError, RecursionError) as err:
            raise UsageError(f"run config is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise UsageError("run config JSON must be an object")
        return cls.from_dict(data)


def _count(value: Any) -> bool:
    """An integer from 1 to 2**63 - 1: what a step or epoch counter (int64) can hold."""
    return is_int(value) and 1 <= value <= MAX_INT


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, list | tuple) else value


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


def freeze_options(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Model options as a hashable, sorted tuple of pairs (lists become tuples)."""
    return tuple(sorted((str(k), _freeze(v)) for k, v in options.items()))


def stored_fields(data: Any) -> dict[str, Any]:
    """The fields tables and reports read from a stored run config — model, label, dataset,
    arch, seed, batch_size, device, budget (a ``{kind: value}`` dict), data_dir, the metric
    options' sampler — from either
    layout (nested ``train`` or the flat one of older stores); missing or damaged ones are None.
    Unlike :meth:`RunConfig.from_dict` it never raises: a report shows what it can."""
    cfg = data if isinstance(data, Mapping) else {}
    train = cfg.get("train")
    train = train if isinstance(train, Mapping) else cfg
    out = {k: cfg.get(k) for k in ("model", "label", "dataset", "arch", "data_dir")}
    metrics = cfg.get("metrics")
    out["sampler"] = metrics.get("sampler") if isinstance(metrics, Mapping) else None
    out.update({k: train.get(k) for k in ("seed", "batch_size", "device")})
    if isinstance(cfg.get("budget"), Mapping):
        out["budget"] = dict(cfg["budget"])
    elif train is not cfg:
        kinds = (("steps", "max_steps"), ("seconds", "max_seconds"), ("epochs", "epochs"))
        given = [(kind, train.get(name)) for kind, name in kinds if train.get(name) is not None]
        out["budget"] = dict(given[:1]) or None
    else:
        out["budget"] = None
    return out
