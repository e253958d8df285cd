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
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aebench import models
from aebench.core.errors import UsageError
from aebench.data import folder_is_data
from aebench.data.base import DATA_DIR_ENV
from aebench.metrics.options import MetricOptions
from aebench.training.settings import BUDGET_KINDS, Budget, TrainConfig

#: Bump when the meaning of the hashed fields changes, so old hashes stop matching. Version 3:
#: the model options are the resolved ones, defaults included (version 2: the overrides only).
HASH_VERSION = 3


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to reproduce one training + evaluation; a plain, hashable value.

    ``suite``, ``label`` and ``data_dir`` are bookkeeping and do not enter :attr:`config_hash`:
    renaming a suite or moving the data does not change a run's numbers, so it is the same run.
    The exception is a dataset whose folder *is* its data (``image-folder``): there another
    ``data_dir`` is other data, so its absolute path enters the hash.
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
    #: every model option with the value the run trained with, as recorded when it was stored
    #: (None: resolved now, from the registry's current defaults); see :meth:`identity`
    resolved: tuple[tuple[str, Any], ...] | None = field(default=None, compare=False)
    #: whether the dataset's folder is its data, as the registry said where the config was
    #: pinned (None: ask the registry now): a worker hashes before it loads plugin datasets
    folder_data: bool | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.model)
        if isinstance(self.model_options, Mapping):
            object.__setattr__(self, "model_options", freeze_options(self.model_options))
        if self.is_folder_data():  # the folder is the data: recorded absolute, never implied
            where = self.data_dir if self.data_dir is not None else os.environ.get(DATA_DIR_ENV)
            if where:
                object.__setattr__(self, "data_dir", os.path.abspath(where))

    def is_folder_data(self) -> bool:
        """Whether this run's dataset reads a folder that is its data (``image-folder``)."""
        return self.folder_data if self.folder_data is not None else folder_is_data(self.dataset)

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

    @property
    def resolved_options(self) -> dict[str, Any]:
        """Every model option with its value, defaults included: as recorded with the run, else
        from the registry (:func:`aebench.models.registry.resolved_options`)."""
        if self.resolved is not None:
            return {k: _thaw(v) for k, v in self.resolved}
        return models.resolved_options(self.model, self.options)

    def pinned(self) -> RunConfig:
        """This config with its resolved model options recorded (hashing it then needs no
        registry: what a worker process receives)."""
        frozen = freeze_options(self.resolved_options)
        where = os.path.abspath(self.data_dir) if self.data_dir is not None else None
        return dataclasses.replace(  # a cwd-free folder
            self, resolved=frozen, data_dir=where, folder_data=self.is_folder_data()
        )

    def identity(self, version: int = HASH_VERSION, folder: bool = True) -> dict[str, Any]:
        """The fields that change the trained weights (what :attr:`config_hash` hashes).

        The model options are every option's value, defaults included (hash version 3), so a
        stored run keeps its meaning when a registered default changes later: its recorded
        options still say what it trained with, and a new run under the new default gets
        another hash. ``version=2`` gives the older identity (the overrides only), to check a
        hash recorded before version 3; ``folder=False`` leaves out the data folder of a
        dataset whose folder is its data, to check a hash recorded before it entered.

        Metric options are not among them: they are recorded with each metric result (the
        store's ``evaluations``), so a new or re-optioned metric reaches finished runs through
        ``aebench eval --store`` instead of retraining them. (Hash version 1 included them.)
        Speed switches enter only when set away from their defaults, so the hashes of runs
        from before they could be set stay valid.
        """
        defaults = TrainConfig().to_dict()
        speed = ("grad_clip", "precision", "channels_last", "compile", "native_thin_deconv")
        # version 2 (hashes recorded before 2026-12-03) hashed the overrides only
        options = self.options if version < 3 else self.resolved_options
        out: dict[str, Any] = {
            "v": version,
            "model": self.model,
            "model_options": options,
            "dataset": self.dataset,
            "arch": self.arch,
            "seed": self.train.seed,
            "budget": self.train.budget.to_dict(),
            "batch_size": self.train.batch_size,
            "latent_dim": self.latent_dim,
            "device": self.train.device,
        }
        out.update({k: v for k in speed if (v := getattr(self.train, k)) != defaults[k]})
        if folder and version >= 3 and self.data_dir is not None and self.is_folder_data():
            out["data_dir"] = os.path.abspath(self.data_dir)  # absent from earlier hashes
        if self.train.lr_milestones:  # a protocol's decay; absent from every earlier hash
            out["lr_milestones"] = list(self.train.lr_milestones)
            out["lr_gamma"] = self.train.lr_gamma
        return out

    @property
    def config_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of :meth:`identity`: stable across processes."""
        return self.hash_at(HASH_VERSION)

    def hash_at(self, version: int, folder: bool = True) -> str:
        """The hash under identity ``version`` (:meth:`identity`)."""
        identity = self.identity(version, folder)
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"), allow_nan=False)
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
            "resolved_options": self.resolved_options,
            "config_hash": self.config_hash,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], upgrade: bool = True) -> RunConfig:
        """Rebuild a config stored by :meth:`to_dict` (the store, a run folder's config).

        Also reads the flat layout stores held before the config tree (``budget``,
        ``batch_size``, ``seed``, ``device`` at the top). Raises :class:`UsageError` if the
        data is malformed or was edited so that its recorded hash no longer matches. Options
        a model has retired come back in today's terms (:meth:`upgraded`) unless ``upgrade``
        is False (the store's older schema upgrades, which check hashes of their time).
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
                resolved=_recorded_options(data.get("resolved_options")),
            )
        except UsageError as err:
            raise UsageError(f"malformed run config: {err}") from None
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
            raise UsageError(f"malformed run config: {err!r}") from None
        recorded = data.get("config_hash")
        if recorded is not None and not cfg.hashes_to(recorded):
            raise UsageError(
                f"run config {cfg.run_name}: recorded hash {str(recorded)[:12]} does not match "
                f"its fields ({cfg.short_hash}); the config was edited"
            )
        try:
            return cfg.upgraded() if upgrade else cfg
        except (TypeError, ValueError) as err:
            raise UsageError(f"malformed run config: {err!r}") from None

    def upgraded(self) -> RunConfig:
        """This config with model options an older aebench recorded in today's names and
        meanings (:func:`aebench.models.upgrade_options`), so its hash is the one the same run
        gets today; itself when nothing changed. The overrides gain every option whose value
        the upgrade made differ from today's default."""
        if self.resolved is None:
            return self
        before = self.resolved_options
        after = models.upgrade_options(self.model, before)
        if after == before:
            return self
        overrides = models.upgrade_options(self.model, self.options)
        overrides = {k: v for k, v in overrides.items() if k in after}
        today = models.resolved_options(self.model, overrides)
        overrides.update({k: v for k, v in after.items() if today.get(k) != v})
        return dataclasses.replace(
            self, model_options=freeze_options(overrides), resolved=freeze_options(after)
        )

    def hashes_to(self, recorded: Any) -> bool:
        """Whether ``recorded`` is this config's hash, now or under identity version 2 (what
        run folders and stores recorded before version 3). A config recorded without its
        resolved options whose model is not registered here cannot be checked: it is taken."""
        if self.resolved is None and self.model not in models.available():
            return True
        older = (self.hash_at(2, folder=False), self.hash_at(3, folder=False))
        return recorded in (self.config_hash, *older)

    @classmethod
    def from_json(cls, text: str | bytes) -> RunConfig:
        try:
            data = json.loads(text)
        except (ValueError, TypeError, RecursionError) as err:
            raise UsageError(f"run config is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise UsageError("run config JSON must be an object")
        return cls.from_dict(data)


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


def _recorded_options(value: Any) -> tuple[tuple[str, Any], ...] | None:
    """A stored ``resolved_options`` table back as frozen pairs (None when not recorded)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"resolved_options must be a table, got {type(value).__name__}")
    return freeze_options(value)
