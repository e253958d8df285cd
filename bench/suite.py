"""Declarative benchmark suites: a TOML file in, a list of frozen :class:`RunConfig` out.

A suite is a grid — models × datasets × architectures × seeds — trained under one budget and
measured one way. Users write it as TOML (the shipped ones live in ``bench/suites/``)::

    name = "quick"
    models = ["ae", "vae", "beta-vae", "vae-gan"]
    datasets = ["mnist-5k"]
    archs = ["conv"]
    seeds = [0, 1, 2]
    batch_size = 128
    latent_dim = 16
    device = "cpu"                 # "auto", "cpu", "cuda", "cuda:1", "mps"

    [budget]                       # exactly one of: epochs, steps, seconds
    epochs = 5

    [metrics]
    backbone = "domain"            # or "inception"
    n_samples = 1000
    sampler = "default"            # "default" = each model's own; or prior / gaussian / gmm
    iw_k = 50
    iw_n = 200

    [overrides.vae-gan]            # model options, for one model (name or label)
    gamma = 0.01

A ``models`` entry may also be an inline table, so one model can appear twice with different
options: ``{ model = "vae", label = "vae-b8", beta = 8.0 }``.

Everything is validated up front, because a typo found after two hours of training costs two
hours: any problem raises :class:`~bench.errors.UsageError` with one line naming the file and the
key. Nothing else may escape :func:`load_suite` or :meth:`Suite.from_dict` (a hypothesis fuzz
test holds us to that).

Each grid point becomes a :class:`RunConfig`; its :attr:`RunConfig.config_hash` is a sha256 of
the fields that decide the run's numbers, so the store can tell that a run is already done even
if the suite was renamed or reordered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bench.errors import UsageError
from bench.metrics.constants import min_n_samples
from models.config import GRID_OPTIONS, OptionError, check_option
from models.config import describe as _describe
from models.config import is_int as _is_int
from models.config import is_real as _is_real

#: Names of the feature networks the metrics can use (issue 3).
BACKBONES: tuple[str, ...] = ("domain", "inception")
#: Samplers for generation metrics; ``None`` in a config means "the model's own default".
SAMPLERS: tuple[str, ...] = ("prior", "gaussian", "gmm")
BUDGET_KINDS: tuple[str, ...] = ("epochs", "steps", "seconds")
#: Model options a suite may not override: the runner sets them from the grid point.
RESERVED_OPTIONS: frozenset[str] = GRID_OPTIONS
#: Refuse grids larger than this: almost certainly a mistake, and expansion would be slow.
MAX_RUNS = 100_000
#: Bump when the meaning of the hashed fields changes, so old hashes stop matching.
HASH_VERSION = 1

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")

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
)
_REQUIRED_KEYS = ("models", "datasets", "archs", "seeds", "budget")


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """How long every model trains: ``epochs``, optimizer ``steps`` or wall-clock ``seconds``.

    One kind per suite, so every model gets the same allowance and comparisons stay fair.
    """

    kind: str
    value: int | float

    @property
    def epochs(self) -> int | None:
        return int(self.value) if self.kind == "epochs" else None

    @property
    def steps(self) -> int | None:
        return int(self.value) if self.kind == "steps" else None

    @property
    def seconds(self) -> float | None:
        return float(self.value) if self.kind == "seconds" else None

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: self.value}

    def __str__(self) -> str:
        return f"{self.value:g} {self.kind}"


@dataclass(frozen=True)
class MetricsOptions:
    """How each run is measured (shared by the whole suite, so numbers are comparable)."""

    backbone: str = "domain"
    n_samples: int = 1000
    sampler: str | None = None  #: None: each model's default (prior for VAEs, gaussian for AE)
    iw_k: int = 500
    iw_n: int = 1000

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelSpec:
    """One model column of the grid: a registered model, its label and its option overrides."""

    model: str
    label: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def options_dict(self) -> dict[str, Any]:
        return {k: _thaw(v) for k, v in self.options}


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to reproduce one training + evaluation; a plain, hashable value.

    ``suite``, ``label`` and ``data_dir`` are bookkeeping and do not enter :attr:`config_hash`:
    renaming a suite or moving the data does not change a run's numbers, so it is the same run.
    """

    suite: str
    model: str
    label: str
    dataset: str
    arch: str
    seed: int
    budget: Budget
    batch_size: int
    latent_dim: int
    metrics: MetricsOptions = field(default_factory=MetricsOptions)
    device: str = "auto"
    model_options: tuple[tuple[str, Any], ...] = ()
    data_dir: str | None = None

    # -- derived ------------------------------------------------------------------------------
    @property
    def options(self) -> dict[str, Any]:
        """The model option overrides as a dict (lists, not tuples)."""
        return {k: _thaw(v) for k, v in self.model_options}

    @property
    def run_name(self) -> str:
        """Readable, unique within a suite: ``vae-mnist-5k-conv-s0``."""
        return f"{self.label}-{self.dataset}-{self.arch}-s{self.seed}"

    def identity(self) -> dict[str, Any]:
        """The fields that define the run's results (what :attr:`config_hash` hashes)."""
        return {
            "v": HASH_VERSION,
            "model": self.model,
            "model_options": self.options,
            "dataset": self.dataset,
            "arch": self.arch,
            "seed": self.seed,
            "budget": self.budget.to_dict(),
            "batch_size": self.batch_size,
            "latent_dim": self.latent_dim,
            "metrics": self.metrics.to_dict(),
            "device": self.device,
        }

    @property
    def config_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of :meth:`identity`: stable across processes."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def short_hash(self) -> str:
        return self.config_hash[:12]

    def model_kwargs(self, image_shape: tuple[int, int, int]) -> dict[str, Any]:
        """Keyword arguments for ``models.create(cfg.model, **kwargs)`` on data of this shape."""
        return {
            **self.options,
            "arch": self.arch,
            "latent_dim": self.latent_dim,
            "image_shape": tuple(image_shape),
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
            "seed": self.seed,
            "budget": self.budget.to_dict(),
            "batch_size": self.batch_size,
            "latent_dim": self.latent_dim,
            "metrics": self.metrics.to_dict(),
            "device": self.device,
            "model_options": self.options,
            "data_dir": self.data_dir,
            "config_hash": self.config_hash,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Rebuild a config stored by :meth:`to_dict` (e.g. from the results store).

        Raises :class:`UsageError` if the data is malformed or was edited so that its recorded
        hash no longer matches.
        """
        try:
            (kind, value), *rest = dict(data["budget"]).items()
            if rest or kind not in BUDGET_KINDS:
                raise ValueError(f"bad budget {data['budget']!r}")
            cfg = cls(
                suite=str(data["suite"]),
                model=str(data["model"]),
                label=str(data.get("label", data["model"])),
                dataset=str(data["dataset"]),
                arch=str(data["arch"]),
                seed=int(data["seed"]),
                budget=Budget(kind, float(value) if kind == "seconds" else int(value)),
                batch_size=int(data["batch_size"]),
                latent_dim=int(data["latent_dim"]),
                metrics=MetricsOptions(**dict(data.get("metrics", {}))),
                device=str(data.get("device", "auto")),
                model_options=_freeze_options(dict(data.get("model_options", {}))),
                data_dir=None if data.get("data_dir") is None else str(data["data_dir"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
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
        except (ValueError, TypeError) as err:
            raise UsageError(f"run config is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise UsageError("run config JSON must be an object")
        return cls.from_dict(data)


@dataclass(frozen=True)
class Suite:
    """A validated suite: the grid's axes plus the settings every run shares."""

    name: str
    models: tuple[ModelSpec, ...]
    datasets: tuple[str, ...]
    archs: tuple[str, ...]
    seeds: tuple[int, ...]
    budget: Budget
    batch_size: int = 128
    latent_dim: int = 16
    metrics: MetricsOptions = field(default_factory=MetricsOptions)
    device: str = "auto"
    data_dir: str | None = None
    description: str = ""
    source: str = "<dict>"  #: the file it came from (for messages)

    def __len__(self) -> int:
        return len(self.models) * len(self.datasets) * len(self.archs) * len(self.seeds)

    def expand(self) -> list[RunConfig]:
        """The grid in a fixed order (model, dataset, arch, seed): one config per run."""
        return [
            RunConfig(
                suite=self.name,
                model=spec.model,
                label=spec.label,
                dataset=dataset,
                arch=arch,
                seed=seed,
                budget=self.budget,
                batch_size=self.batch_size,
                latent_dim=self.latent_dim,
                metrics=self.metrics,
                device=self.device,
                model_options=spec.options,
                data_dir=self.data_dir,
            )
            for spec in self.models
            for dataset in self.datasets
            for arch in self.archs
            for seed in self.seeds
        ]

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>", default_name: str = "suite") -> Suite:
        """Validate parsed TOML (or any value) into a suite; only ever raises UsageError."""
        try:
            return _Validator(source).suite(data, default_name)
        except UsageError:
            raise
        except RecursionError:
            raise UsageError(f"{source}: suite is nested too deeply") from None
        except Exception as err:  # a bug in validation must still not trace at the user
            raise UsageError(f"{source}: invalid suite ({type(err).__name__}: {err})") from None


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def _suites_dir() -> Any:
    return resources.files("bench").joinpath("suites")


def available_suites() -> list[str]:
    """Names of the suites shipped with aebench (``load_suite(name)`` accepts them)."""
    try:
        return sorted(
            p.name[: -len(".toml")] for p in _suites_dir().iterdir() if p.name.endswith(".toml")
        )
    except (OSError, FileNotFoundError):
        return []


def load_suite(name_or_path: str | Path) -> Suite:
    """A shipped suite by name (``"quick"``) or a TOML file by path; validated.

    A string is taken as a path when it names an existing file or looks like one (ends in
    ``.toml`` or contains a path separator); otherwise as a shipped suite's name.
    """
    text_name = str(name_or_path)
    path = Path(name_or_path)
    looks_like_path = (
        isinstance(name_or_path, Path)
        or text_name.endswith(".toml")
        or "/" in text_name
        or "\\" in text_name
    )
    if looks_like_path or path.is_file():
        return load_suite_file(path)
    if text_name in available_suites():
        resource = _suites_dir().joinpath(f"{text_name}.toml")
        return parse_suite(
            resource.read_bytes(), source=f"{text_name}.toml", default_name=text_name
        )
    raise UsageError(
        f"unknown suite {text_name!r}: no such file, and the shipped suites are "
        f"{', '.join(available_suites()) or '(none)'}"
    )


def load_suite_file(path: str | Path) -> Suite:
    """Read and validate the suite TOML at ``path``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: suite file not found") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a suite file") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read suite file ({err.strerror or err})") from None
    return parse_suite(raw, source=str(path), default_name=path.stem)


def parse_suite(text: str | bytes, source: str = "<string>", default_name: str = "suite") -> Suite:
    """Parse TOML text and validate it; syntax errors name the line (tomllib's message)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise UsageError(f"{source}: not UTF-8 text (byte {err.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{source}: TOML syntax error: {err}") from None
    except RecursionError:
        raise UsageError(f"{source}: TOML is nested too deeply") from None
    except Exception as err:  # tomllib should only raise TOMLDecodeError; be safe anyway
        raise UsageError(f"{source}: cannot parse TOML ({type(err).__name__}: {err})") from None
    return Suite.from_dict(data, source=source, default_name=default_name)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, list | tuple) else value


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


def _freeze_options(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((str(k), _freeze(v)) for k, v in options.items()))


def _registered(module: str, fallback: tuple[str, ...]) -> list[str]:
    """``fallback`` plus whatever ``bench.metrics.<module>.available()`` registers (plugins).

    The metrics package is imported lazily and optionally, so suites validate even where it is
    not importable; the built-in names are always accepted.
    """
    import importlib

    try:
        extra = importlib.import_module(f"bench.metrics.{module}").available()
    except Exception:  # absent or broken metrics package: the built-in names still hold
        extra = []
    names = list(fallback)
    names += sorted(n for n in extra if isinstance(n, str) and n not in names)
    return names


def _config_class(model_cls: type) -> type | None:
    """The ModelConfig dataclass a model validates its options with, if it has one.

    Prefers an explicit ``config_class`` attribute; otherwise the most derived
    :class:`~models.config.ModelConfig` subclass visible in the model's module.
    """
    explicit = getattr(model_cls, "config_class", None)
    if isinstance(explicit, type):
        return explicit
    import sys

    from models.config import ModelConfig

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


class _Validator:
    """Walks parsed TOML, turning the first problem into a one-line UsageError."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> UsageError:
        return UsageError(f"{self.source}: key {key!r}: {message}")

    # -- leaves ------------------------------------------------------------------------------
    def table(self, value: Any, key: str, allowed: tuple[str, ...] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {_describe(value)}")
        for k in value:
            if not isinstance(k, str):
                raise self.fail(key, f"keys must be strings, got {_describe(k)}")
            if allowed is not None and k not in allowed:
                full = f"{key}.{k}" if key else k
                raise UsageError(
                    f"{self.source}: unknown key {full!r}; allowed here: {', '.join(allowed)}"
                )
        return value

    def int_(self, value: Any, key: str, low: int = 1, high: int = 2**63 - 1) -> int:
        if not _is_int(value):
            raise self.fail(key, f"must be an integer, got {_describe(value)}")
        if not low <= value <= high:
            bound = f">= {low}" if high == 2**63 - 1 else f"between {low} and {high}"
            raise self.fail(key, f"must be {bound}, got {value}")
        return int(value)

    def real(self, value: Any, key: str, positive: bool = True) -> float:
        if not _is_real(value):
            raise self.fail(key, f"must be a finite number, got {_describe(value)}")
        if positive and value <= 0:
            raise self.fail(key, f"must be > 0, got {value}")
        return float(value)

    def name(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not _NAME_RE.match(value):
            raise self.fail(
                key,
                "must be a name of letters, digits and ._+- (at most 64, starting with a letter "
                f"or digit), got {_describe(value)}",
            )
        return value

    def choice(self, value: Any, key: str, choices: list[str] | tuple[str, ...], what: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {_describe(value)}")
        if value not in choices:
            raise self.fail(key, f"unknown {what} {value!r}; choose from: {', '.join(choices)}")
        return value

    def list_(self, value: Any, key: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(key, f"must be an array, got {_describe(value)}")
        if not value:
            raise self.fail(key, "must not be empty")
        return value

    def unique(self, items: list[Any], key: str) -> tuple[Any, ...]:
        seen: set[Any] = set()
        for item in items:
            if item in seen:
                raise self.fail(key, f"{item!r} is listed twice")
            seen.add(item)
        return tuple(items)

    # -- sections ----------------------------------------------------------------------------
    def suite(self, data: Any, default_name: str) -> Suite:
        data = self.table(data, "", _TOP_KEYS)
        for key in _REQUIRED_KEYS:
            if key not in data:
                raise UsageError(f"{self.source}: missing required key {key!r}")
        name = self.name(data.get("name", default_name), "name")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"must be a string, got {_describe(description)}")

        from bench import data as datasets
        from models.backbones import ARCHS

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
        budget = self.budget(data["budget"])
        batch_size = self.int_(data.get("batch_size", 128), "batch_size", high=1_000_000)
        latent_dim = self.int_(data.get("latent_dim", 16), "latent_dim", high=100_000)
        metrics = self.metrics(data.get("metrics", {}))
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
        overrides = self.table(data.get("overrides", {}), "overrides", None)
        specs = self.models(data["models"], overrides)

        axes = (specs, ds, archs, seeds)
        size = math.prod(len(a) for a in axes)
        if size > MAX_RUNS:
            raise UsageError(f"{self.source}: the grid has {size} runs (more than {MAX_RUNS})")
        return Suite(
            name=name,
            models=tuple(specs),
            datasets=self.unique(ds, "datasets"),
            archs=self.unique(archs, "archs"),
            seeds=self.unique(seeds, "seeds"),
            budget=budget,
            batch_size=batch_size,
            latent_dim=latent_dim,
            metrics=metrics,
            device=device,
            data_dir=data_dir,
            description=description,
            source=self.source,
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

    def metrics(self, value: Any) -> MetricsOptions:
        table = self.table(value, "metrics", ("backbone", "n_samples", "sampler", "iw_k", "iw_n"))
        d = MetricsOptions()
        sampler = table.get("sampler", "default")
        if sampler != "default":
            sampler = self.choice(
                sampler, "metrics.sampler", _registered("samplers", SAMPLERS), "sampler"
            )
        return MetricsOptions(
            backbone=self.choice(
                table.get("backbone", d.backbone),
                "metrics.backbone",
                _registered("features", BACKBONES),
                "feature backbone",
            ),
            n_samples=self.int_(
                table.get("n_samples", d.n_samples),
                "metrics.n_samples",
                low=min_n_samples(),
                high=10_000_000,
            ),
            sampler=None if sampler == "default" else sampler,
            iw_k=self.int_(table.get("iw_k", d.iw_k), "metrics.iw_k", high=1_000_000),
            iw_n=self.int_(table.get("iw_n", d.iw_n), "metrics.iw_n", high=10_000_000),
        )

    def models(self, value: Any, overrides: dict[str, Any]) -> list[ModelSpec]:
        import models as registry

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
        return specs

    def model_options(
        self, model: str, options: dict[str, Any], where: dict[str, str]
    ) -> tuple[tuple[str, Any], ...]:
        """Type-check overrides against the model's config dataclass, then let it validate.

        Options equal to the model's default are dropped, so writing a default out explicitly
        does not change the run's hash.
        """
        import models as registry

        cls, registered = registry.get(model)
        config_cls = _config_class(cls)
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
        return _freeze_options(clean)

    def option_value(self, value: Any, key: str, default: Any) -> Any:
        """One option checked by the models' own validator (:func:`models.config.check_option`,
        the one ``aebench train -o`` uses too) against the type of its default."""
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
