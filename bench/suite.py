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
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bench.errors import UsageError
from models.config import GRID_OPTIONS

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
HASH_VERSION = 2

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

    def for_run(self, seed: int, train_batch_size: int) -> Any:
        """The :class:`~bench.metrics.evaluation.MetricOptions` a run is evaluated with: these
        options plus the run's own seed and batch size. The one conversion, used by the suite
        runner and by ``aebench train``, so both write the same ``metrics.json``."""
        from bench.metrics.evaluation import MetricOptions

        return MetricOptions(
            n_samples=self.n_samples,
            backbone=self.backbone,
            sampler=self.sampler,
            iw_k=self.iw_k,
            iw_n=self.iw_n,
            seed=seed,
            train_batch_size=train_batch_size,
        )


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
        """The fields that change the trained weights (what :attr:`config_hash` hashes).

        Metric options are not among them: they are recorded with each metric result (the
        store's ``evaluations``), so a new or re-optioned metric reaches finished runs through
        ``aebench eval --store`` instead of retraining them. (Hash version 1 included them.)
        """
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
            from bench.suite_parse import Validator

            return Validator(source).suite(data, default_name)
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
