"""Validating a parsed suite: every problem becomes one UsageError line naming file and key.

Everything is checked up front, because a typo found after two hours of training costs two
hours. Model options go through the models' own validator (``models/config.py``), the same one
``aebench train -o`` uses, so the suite and the command line cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aebench import data as datasets
from aebench import models as registry
from aebench.config.run import _freeze, freeze_options
from aebench.core.errors import UsageError
from aebench.core.plugins import use_plugins
from aebench.core.values import describe as _describe
from aebench.core.values import is_int as _is_int
from aebench.core.values import is_real as _is_real
from aebench.experiments.claims import parse_claims
from aebench.experiments.protocols import PROTOCOLS, Protocol, ProtocolUse
from aebench.experiments.toml_checks import TomlChecker
from aebench.metrics.options import MetricOptions, check_n_samples, option_names
from aebench.models.backbones import ARCHS
from aebench.models.config import GRID_OPTIONS, OptionError, check_option, config_class_of
from aebench.training.settings import BUDGET_KINDS, Budget, TrainConfig

#: Model options a suite may not override: the runner sets them from the grid point.
RESERVED_OPTIONS: frozenset[str] = GRID_OPTIONS
#: Refuse grids larger than this: almost certainly a mistake, and expansion would be slow.
MAX_RUNS = 100_000

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")

_TOP_KEYS = (
    "name",
    "description",
    "models",
    "datasets",
    "archs",
    "seeds",
    "budget",
    "batch_size",
    "latent_dim",
    "metrics",
    "device",
    "data_dir",
    "overrides",
    "claims",
    "protocol",
    "plugins",
)
#: ``budget`` too, unless a ``[protocol]`` sets it
_REQUIRED_KEYS = ("models", "datasets", "archs", "seeds")


@dataclass(frozen=True)
class ModelSpec:
    """One model column of the grid: a registered model, its label and its option overrides."""

    model: str
    label: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def options_dict(self) -> dict[str, Any]:
        return {k: _thaw(v) for k, v in self.options}


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


class Validator(TomlChecker):
    """Walks a suite's parsed TOML, turning the first problem into a one-line UsageError."""

    # -- sections ----------------------------------------------------------------------------
    def suite_fields(self, data: Any, default_name: str) -> dict[str, Any]:
        """The fields of a :class:`~aebench.experiments.suite.Suite` from its parsed TOML."""
        data = self.table(data, "", _TOP_KEYS)
        plugins = self.plugins(data.get("plugins", []))  # first: they may add models, datasets
        for key in _REQUIRED_KEYS:
            if key not in data:
                raise UsageError(f"{self.source}: missing required key {key!r}")
        name = self.name(data.get("name", default_name), "name")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"must be a string, got {_describe(description)}")
        ds, archs, seeds = self.axes(data)
        protocol = self.protocol(data["protocol"]) if "protocol" in data else None
        defaults = (protocol.latent_dim, protocol.batch_size) if protocol else (16, 128)
        batch_size = self.int_(data.get("batch_size", defaults[1]), "batch_size", high=1_000_000)
        latent_dim = self.int_(data.get("latent_dim", defaults[0]), "latent_dim", high=100_000)
        if protocol is None:
            if "budget" not in data:
                raise UsageError(f"{self.source}: missing required key 'budget'")
            budget, use = self.budget(data["budget"]), None
            metrics = self.metrics(data.get("metrics", {}))
        else:
            self.follows(protocol, data, ds, archs, latent_dim, batch_size)
            use, metrics = self.protocol_use(protocol, data)
            budget = Budget("epochs", use.epochs)
        device, data_dir = self.where(data)
        overrides = self.table(data.get("overrides", {}), "overrides", None)
        specs = self.models(data["models"], overrides)
        self.some_arch_fits(specs, archs)
        size = math.prod(len(a) for a in (specs, ds, archs, seeds))
        if size > MAX_RUNS:
            raise UsageError(f"{self.source}: the grid has {size} runs (more than {MAX_RUNS})")
        # claims are held to this suite's labels and datasets, so none can go untested
        labels = [spec.label for spec in specs]
        claims = parse_claims(data["claims"], self.source, labels, ds) if "claims" in data else ()
        return dict(
            name=name,
            models=tuple(specs),
            datasets=self.unique(ds, "datasets"),
            archs=self.unique(archs, "archs"),
            seeds=self.unique(seeds, "seeds"),
            train=TrainConfig(
                batch_size=batch_size,
                device=device,
                **budget.train_fields(),
                **(use.lr_decay() if use else {}),
            ),
            latent_dim=latent_dim,
            metrics=metrics,
            data_dir=data_dir,
            claims=claims,
            protocol=use,
            description=description,
            source=self.source,
            plugins=plugins,
        )

    def some_arch_fits(self, specs: list[ModelSpec], archs: list[str]) -> None:
        """Every model can train on at least one of the suite's backbones (the grid leaves out
        the other pairs, :meth:`Suite.not_run`); one line naming the first that cannot."""
        for i, spec in enumerate(specs):
            if not any(registry.supports_arch(spec.model, arch) for arch in archs):
                only = ", ".join(registry.get(spec.model)[0].archs or ())
                raise self.fail(f"models[{i}]", f"{spec.model} trains on {only} only, and this "
                                f"suite's archs are {', '.join(archs)}")  # fmt: skip

    def plugins(self, value: Any) -> tuple[str, ...]:
        """``plugins = ["my_model.py", ...]``: Python files, relative to the suite file, imported
        now (:func:`~aebench.core.plugins.use_plugins`) so their models can be named here."""
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail("plugins", f"must be an array of file paths, got {_describe(value)}")
        suite_file = Path(self.source)
        folder = suite_file.parent if suite_file.is_file() else Path.cwd()
        files = tuple(str((folder / Path(v).expanduser()).resolve()) for v in value)
        use_plugins(files)
        return files

    def axes(self, data: dict[str, Any]) -> tuple[list[str], list[str], list[int]]:
        """The grid's datasets, architectures and seeds, each checked."""
        dataset_names = datasets.available()
        ds = [
            self.choice(v, f"datasets[{i}]", dataset_names, "dataset")
            for i, v in enumerate(self.list_(data["datasets"], "datasets"))
        ]
        archs = [
            self.choice(v, f"archs[{i}]", ARCHS, "architecture")
            for i, v in enumerate(self.list_(data["archs"], "archs"))
        ]
        seeds = [
            self.int_(v, f"seeds[{i}]", low=0, high=2**32 - 1)
            for i, v in enumerate(self.list_(data["seeds"], "seeds"))
        ]
        return ds, archs, seeds

    def protocol_use(
        self, protocol: Protocol, data: dict[str, Any]
    ) -> tuple[ProtocolUse, MetricOptions]:
        """How the suite uses ``protocol`` (its scale, the metric options it changes) and the
        metric options: the protocol's, with the suite's ``[metrics]`` on top."""
        table = self.table(data.get("metrics", {}), "metrics", option_names())
        metrics = self.metrics({**protocol.metrics, **table})
        changes = tuple(
            (k, v, table[k]) for k, v in protocol.metrics.items() if table.get(k, v) != v
        )
        scale = data["protocol"].get("scale", 1.0)
        return ProtocolUse(protocol.name, float(scale), changes), metrics

    def where(self, data: dict[str, Any]) -> tuple[str, str | None]:
        """The ``device`` every run uses and the ``data_dir`` it reads, each checked."""
        device = data.get("device", "auto")
        if not isinstance(device, str) or not _DEVICE_RE.match(device):
            raise self.fail(
                "device", f"must be auto, cpu, mps, cuda or cuda:N, got {_describe(device)}"
            )
        data_dir = data.get("data_dir")
        if data_dir is not None and (not isinstance(data_dir, str) or not data_dir.strip()):
            raise self.fail(
                "data_dir", f"must be a non-empty path string, got {_describe(data_dir)}"
            )
        return device, data_dir

    def protocol(self, value: Any) -> Protocol:
        """The ``[protocol]`` table: a registered protocol's ``name`` and a ``scale`` in
        (0, 1] of its training budget."""
        table = self.table(value, "protocol", ("name", "scale"))
        if "name" not in table:
            raise self.fail("protocol", f"needs a name: one of {', '.join(PROTOCOLS.names())}")
        name = self.choice(table["name"], "protocol.name", PROTOCOLS.names(), "protocol")
        if "scale" in table and self.real(table["scale"], "protocol.scale") > 1:
            raise self.fail("protocol.scale", f"must be at most 1, got {table['scale']}")
        return PROTOCOLS.get(name)

    def follows(
        self,
        protocol: Protocol,
        data: dict[str, Any],
        datasets: list[str],
        archs: list[str],
        latent_dim: int,
        batch_size: int,
    ) -> None:
        """Refuse a suite that claims a protocol but departs from its data or network."""
        what = f"protocol {protocol.name} is defined"
        for i, d in enumerate(datasets):
            if d not in protocol.datasets:
                raise self.fail(
                    f"datasets[{i}]", f"{what} on {', '.join(protocol.datasets)}, not {d!r}"
                )
        for i, a in enumerate(archs):
            if a not in protocol.archs:
                raise self.fail(
                    f"archs[{i}]", f"{what} for architecture {', '.join(protocol.archs)}, not {a!r}"
                )
        if latent_dim != protocol.latent_dim:
            raise self.fail("latent_dim", f"{what} with {protocol.latent_dim}, not {latent_dim}")
        if batch_size != protocol.batch_size:
            raise self.fail("batch_size", f"{what} with {protocol.batch_size}, not {batch_size}")
        if "budget" in data:
            raise self.fail(
                "budget", f"set by protocol {protocol.name}; scale it with protocol.scale instead"
            )

    def budget(self, value: Any) -> Budget:
        table = self.table(value, "budget", BUDGET_KINDS)
        if len(table) != 1:
            given = ", ".join(table) or "none"
            raise self.fail(
                "budget", f"give exactly one of epochs, steps, seconds (given: {given})"
            )
        ((kind, amount),) = table.items()
        if kind == "seconds":
            return Budget(kind, self.real(amount, "budget.seconds"))
        return Budget(kind, self.int_(amount, f"budget.{kind}"))

    def metrics(self, value: Any) -> MetricOptions:
        """The ``[metrics]`` table, validated by :class:`MetricOptions` itself (shared fields
        and every registered family's settings) and :func:`check_n_samples` (the memory limit);
        a bad value names ``metrics.KEY``."""
        table = self.table(value, "metrics", option_names())
        try:
            return check_n_samples(MetricOptions.from_dict(table))
        except OptionError as err:
            raise self.fail(f"metrics.{err.key}", str(err)) from None

    def models(self, value: Any, overrides: dict[str, Any]) -> list[ModelSpec]:
        names = registry.available()
        entries: list[tuple[str, str, dict[str, Any], str]] = []  # model, label, options, key
        for i, entry in enumerate(self.list_(value, "models")):
            key = f"models[{i}]"
            if isinstance(entry, str):
                model = self.choice(entry, key, names, "model")
                entries.append((model, model, {}, key))
                continue
            if not isinstance(entry, dict):
                raise self.fail(
                    key, f"must be a model name or an inline table, got {_describe(entry)}"
                )
            table = self.table(entry, key, None)
            if "model" not in table:
                raise self.fail(key, "an inline model table needs a 'model' key")
            model = self.choice(table["model"], f"{key}.model", names, "model")
            label = self.name(table.get("label", model), f"{key}.label")
            options = {k: v for k, v in table.items() if k not in ("model", "label")}
            entries.append((model, label, options, key))

        labels = [label for _, label, _, _ in entries]
        self.unique(labels, "models")
        for target in overrides:
            if target not in labels:
                raise self.fail(
                    f"overrides.{target}",
                    f"no model {target!r} in this suite's models ({', '.join(labels)})",
                )
        specs = []
        for model, label, options, key in entries:
            extra = self.table(overrides.get(label, {}), f"overrides.{label}", None)
            merged = {**options, **extra}
            where = {k: (f"overrides.{label}.{k}" if k in extra else f"{key}.{k}") for k in merged}
            specs.append(ModelSpec(model, label, self.model_options(model, merged, where)))
        self.distinct_runs(specs)
        return specs

    def distinct_runs(self, specs: list[ModelSpec]) -> None:
        """Two labels with one model and the same options, compared resolved (every option
        with its value, as the run's hash has them: a default written out is the default)
        would make the same runs, which the store keeps once: refused, naming both."""
        seen: dict[tuple[str, Any], str] = {}
        for spec in specs:
            resolved = registry.resolved_options(spec.model, spec.options_dict)
            key = (spec.model, freeze_options(resolved))
            if key in seen:
                raise self.fail(
                    "models",
                    f"{seen[key]!r} and {spec.label!r} are the same model with the same options, "
                    "so they would make the same runs; give one other options or drop it",
                )
            seen[key] = spec.label

    def model_options(
        self, model: str, options: dict[str, Any], where: dict[str, str]
    ) -> tuple[tuple[str, Any], ...]:
        """Type-check overrides against the model's config dataclass, then let it validate.

        Options equal to the model's default are dropped, so writing a default out explicitly
        does not change the run's hash.
        """
        cls, registered = registry.get(model)
        config_cls = config_class_of(cls)
        fields = (
            {f.name: f for f in dataclasses.fields(config_cls)} if config_cls is not None else None
        )
        clean: dict[str, Any] = {}
        for k, v in options.items():
            key = where[k]
            if k in RESERVED_OPTIONS:
                raise self.fail(key, f"{k} is set by the suite grid, not per model")
            if fields is not None and k not in fields:
                raise self.fail(
                    key,
                    f"model {model!r} has no option {k!r}; options: "
                    f"{', '.join(sorted(set(fields) - RESERVED_OPTIONS))}",
                )
            default = None
            if fields is not None:
                f = fields[k]
                default = f.default if f.default is not dataclasses.MISSING else None
            clean[k] = self.option_value(v, key, registered.get(k, default))
        if config_cls is not None:
            try:
                config_cls.from_kwargs(model, {**registered, **clean})
            except (UsageError, TypeError, ValueError) as err:
                tables = sorted({w.rsplit(".", 1)[0] for w in where.values()}) or [model]
                raise self.fail(" / ".join(tables), str(err)) from None
            defaults = {**{n: f.default for n, f in fields.items()}, **registered}  # type: ignore[union-attr]
            clean = {k: v for k, v in clean.items() if _freeze(defaults.get(k)) != _freeze(v)}
        return freeze_options(clean)

    def option_value(self, value: Any, key: str, default: Any) -> Any:
        """One option checked by the models' own validator
        (:func:`aebench.models.config.check_option`, the one ``aebench train -o`` uses too)
        against the type of its default."""
        if isinstance(default, bool | int | float | str | tuple):
            try:
                return check_option(key, value, default)
            except OptionError as err:
                raise self.fail(key, str(err)) from None
        # Unknown default (a plugin model without a config dataclass): plain scalars only.
        if isinstance(value, bool | str) or _is_int(value) or _is_real(value):
            return value
        if isinstance(value, list) and all(
            isinstance(v, bool | str) or _is_int(v) or _is_real(v) for v in value
        ):
            return list(value)
        raise self.fail(
            key, f"must be a number, string, boolean or array of them, got {_describe(value)}"
        )
