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

A suite may follow a paper's protocol instead of giving a budget (``[protocol] name, scale``:
:mod:`aebench.experiments.protocols`); it is then held to the paper's dataset, network, latent size
and batch size, and its budget is the paper's scaled.

A ``models`` entry may also be an inline table, so one model can appear twice with different
options: ``{ model = "vae", label = "vae-b8", beta = 8.0 }``.

Everything is validated up front, because a typo found after two hours of training costs two hours:
any problem raises :class:`~aebench.core.errors.UsageError` with one line naming the file and the
key. Nothing else may escape :func:`load_suite` or :meth:`Suite.from_dict` (a hypothesis fuzz test
holds us to that).

Each grid point becomes a :class:`RunConfig`; its :attr:`RunConfig.config_hash` is a sha256 of
the fields that decide the run's numbers, so the store can tell that a run is already done even
if the suite was renamed or reordered.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aebench import models
from aebench.config.run import HASH_VERSION, RunConfig
from aebench.core.atomic import parse_toml_text, read_input_file
from aebench.core.errors import UsageError
from aebench.experiments.claims import Claim
from aebench.experiments.protocols import ProtocolUse
from aebench.experiments.suite_parse import MAX_RUNS, RESERVED_OPTIONS, ModelSpec, Validator
from aebench.metrics.options import MetricOptions
from aebench.training.settings import BUDGET_KINDS, Budget, TrainConfig

__all__ = [
    "BUDGET_KINDS",
    "HASH_VERSION",
    "MAX_RUNS",
    "RESERVED_OPTIONS",
    "Budget",
    "ModelSpec",
    "RunConfig",
    "Suite",
    "TrainConfig",
    "available_suites",
    "load_suite",
    "load_suite_file",
    "parse_suite",
]


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Suite:
    """A validated suite: the grid's axes plus the settings every run shares."""

    name: str
    models: tuple[ModelSpec, ...]
    datasets: tuple[str, ...]
    archs: tuple[str, ...]
    seeds: tuple[int, ...]
    #: budget, batch size and device of every run; each grid point sets its own seed
    train: TrainConfig
    latent_dim: int = 16
    metrics: MetricOptions = field(default_factory=MetricOptions)
    data_dir: str | None = None
    #: the suite's own claims (``[[claims]]``), checked in its report beside the built-in ones
    claims: tuple[Claim, ...] = ()
    #: the published protocol the suite follows (``[protocol]``), checked and scaled
    protocol: ProtocolUse | None = None
    description: str = ""
    source: str = "<dict>"  #: the file it came from (for messages)
    #: the plugin files (``plugins = [...]``, absolute) whose models, datasets, … it may name
    plugins: tuple[str, ...] = ()

    @property
    def budget(self) -> Budget:
        return self.train.budget

    def __len__(self) -> int:
        return len(self.expand())

    def not_run(self) -> list[tuple[str, str]]:
        """The (model label, arch) pairs of the grid that are left out: the model cannot be
        built on that backbone (its class's ``archs``)."""
        return [(spec.label, arch) for spec in self.models for arch in self.archs
                if not models.supports_arch(spec.model, arch)]  # fmt: skip

    def expand(self) -> list[RunConfig]:
        """The grid in a fixed order (model, dataset, arch, seed): one config per run, leaving
        out the pairs in :meth:`not_run`."""
        return [
            RunConfig(
                suite=self.name,
                model=spec.model,
                label=spec.label,
                dataset=dataset,
                arch=arch,
                latent_dim=self.latent_dim,
                model_options=spec.options,
                train=dataclasses.replace(self.train, seed=seed),
                metrics=self.metrics,
                data_dir=self.data_dir,
            )
            for spec in self.models
            for dataset in self.datasets
            for arch in self.archs
            for seed in self.seeds
            if models.supports_arch(spec.model, arch)
        ]

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>", default_name: str = "suite") -> Suite:
        """Validate parsed TOML (or any value) into a suite; only ever raises UsageError."""
        try:
            return cls(**Validator(source).suite_fields(data, default_name))
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
    return resources.files("aebench").joinpath("suites")


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
    """Read and validate the suite TOML at ``path``: a regular file of at most
    :data:`~aebench.core.atomic.MAX_INPUT_BYTES` (a FIFO or ``/dev/zero`` is one line, not a hang or
    a MemoryError)."""
    path = Path(path)
    raw = read_input_file(path, "suite file")
    return parse_suite(raw, source=str(path), default_name=path.stem)


def parse_suite(text: str | bytes, source: str = "<string>", default_name: str = "suite") -> Suite:
    """Parse TOML text and validate it; syntax errors name the line (tomllib's message)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise UsageError(f"{source}: not UTF-8 text (byte {err.start})") from None
    data = parse_toml_text(text, source)
    return Suite.from_dict(data, source=source, default_name=default_name)
