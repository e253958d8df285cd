"""Published values, each with its protocol, and their comparison with a suite's own runs.

The shipped file (``bench/published/values.toml``) holds numbers read from papers — Ghosh et
al. 2020's Table 1 FIDs, Burda et al. 2016's MNIST NLLs, Pythae's reproductions — each with the
setting it was measured in (dataset, binarization, architecture, latent size, budget, sampler,
number of samples, feature network) and whether it was confirmed in the source text. A user's
own file has the same layout (``aebench report --published FILE``); :func:`load_published`
checks every field, and a missing or ill-typed one is one :class:`UsageError` line.

A value's ``metric`` must be a key the metric families declare (or such a key for a sampler
aebench lacks, ``fid@two-stage``): a run's descriptive columns (``label``, ``seed``) are refused
when the file is loaded, not "compared" later. A value is set beside aebench's when the suite
follows its ``protocol`` (:mod:`aebench.experiments.protocols`), the suite has its ``model`` and
the runs recorded its ``metric``.
The difference is given in units of our seed standard deviation, (ours − published) / std:
how many of our own run-to-run spreads apart the two numbers are. At a scaled budget the
difference measures the budget as much as the code, and the report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aebench.core.atomic import parse_toml_text, read_input_text
from aebench.core.errors import UsageError
from aebench.core.values import is_real
from aebench.experiments.claims import metric_problem

#: every value must have these (after its group's fields are merged in)
TEXT_FIELDS = (
    "protocol", "source", "dataset", "binarization", "architecture", "budget", "sampler",
    "features", "paper_model", "model", "metric",
)  # fmt: skip
REQUIRED = (*TEXT_FIELDS, "latent_dim", "n_samples", "value", "confirmed")
OPTIONAL = ("note",)


@dataclass(frozen=True)
class PublishedValue:
    """One published number and the setting it was measured in."""

    protocol: str
    source: str
    dataset: str
    binarization: str
    architecture: str
    latent_dim: int | str  #: text where the source does not state one
    budget: str
    sampler: str
    n_samples: int
    features: str
    paper_model: str  #: the paper's name for the row ("VAE (k = 1)", "RAE-L2")
    model: str  #: aebench's model it corresponds to, "" if aebench has none
    metric: str  #: aebench's metric key ("fid@gmm", "nll_iw")
    value: float
    confirmed: bool
    note: str = ""


def shipped_path() -> Path:
    return Path(str(resources.files("aebench").joinpath("published", "values.toml")))


def load_published(path: str | Path | None = None) -> list[PublishedValue]:
    """The values in ``path`` (default: the shipped file), checked; only raises UsageError.

    Only a regular file of at most :data:`~aebench.core.atomic.MAX_INPUT_BYTES` is read (a FIFO
    would block, ``/dev/zero`` never ends), and TOML nested too deeply for the parser is one line.
    """
    path = Path(path) if path is not None else shipped_path()
    text = read_input_text(path, "published-values file")
    return parse_published(parse_toml_text(text, str(path)), str(path))


def parse_published(data: Any, source: str) -> list[PublishedValue]:
    """Validate parsed TOML: ``[[group]]`` tables of shared fields, each with ``values``."""
    if not isinstance(data, dict) or set(data) - {"group"}:
        raise UsageError(f"{source}: expected only [[group]] tables")
    groups = data.get("group", [])
    if not groups:
        raise UsageError(f"{source}: no published values (expected [[group]] tables)")
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise UsageError(f"{source}: 'group' must be an array of tables ([[group]])")
    out = []
    for i, group in enumerate(groups):
        values = group.get("values")
        if not isinstance(values, list) or not values:
            raise UsageError(f"{source}: group[{i}]: needs a non-empty 'values' array")
        shared = {k: v for k, v in group.items() if k != "values"}
        for j, entry in enumerate(values):
            where = f"{source}: group[{i}].values[{j}]"
            if not isinstance(entry, dict):
                raise UsageError(f"{where}: must be a table, got {type(entry).__name__}")
            out.append(_value({**shared, **entry}, where))
    return out


def _value(fields: dict[str, Any], where: str) -> PublishedValue:
    unknown = sorted(set(fields) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise UsageError(f"{where}: unknown field {unknown[0]!r}")
    for key in REQUIRED:
        if key not in fields:
            raise UsageError(f"{where}: missing field {key!r}")
    for key in (*TEXT_FIELDS, *OPTIONAL):
        if key in fields and not isinstance(fields[key], str):
            raise UsageError(f"{where}: field {key!r} must be text")
    for key in TEXT_FIELDS:
        if key != "model" and not fields[key].strip():
            raise UsageError(f"{where}: field {key!r} must not be empty")
    value = fields["value"]
    if not is_real(value):
        raise UsageError(f"{where}: field 'value' must be a finite number")
    problem = metric_problem(fields["metric"], other_samplers=True)
    if problem:  # a column such as `label` or `seed` would be "compared" or trace
        raise UsageError(f"{where}: field 'metric': {problem}")
    if not isinstance(fields["confirmed"], bool):
        raise UsageError(f"{where}: field 'confirmed' must be true or false")
    n = fields["n_samples"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"{where}: field 'n_samples' must be a positive integer")
    latent = fields["latent_dim"]
    if isinstance(latent, bool) or not (
        (isinstance(latent, int) and latent >= 1) or (isinstance(latent, str) and latent.strip())
    ):
        raise UsageError(f"{where}: field 'latent_dim' must be a positive integer or text")
    return PublishedValue(**{**fields, "value": float(value)})


@dataclass(frozen=True)
class Match:
    """A published value and our runs' numbers for it (``n`` 0: no run measured it)."""

    published: PublishedValue
    mean: float = math.nan
    std: float = math.nan
    n: int = 0

    @property
    def z(self) -> float:
        """(ours − published) / our seed std; NaN without two seeds or with no spread."""
        if self.n < 2 or not self.std > 0:
            return math.nan
        return (self.mean - self.published.value) / self.std


def match(values: list[PublishedValue], protocol: str, runs: Any) -> list[Match]:
    """Every value of ``protocol``, with our runs' mean ± std where the suite has its model
    and the runs recorded its metric. A value's ``model`` names a suite label (``base_label``,
    the label before runs measured with different metric options were split apart, where the
    runs have it); only when no label is spelled so does it match runs of that registered
    model (so a suite's extra ``vae-b8`` variant is never averaged into the published ``vae``).
    Runs of one label measured with different metric options are not averaged into one number
    either: such a value is left unmatched, as the report keeps those runs apart."""
    out = []
    column = "base_label" if "base_label" in runs else "label"
    for v in values:
        if v.protocol != protocol:
            continue
        rows = None
        if v.model:
            by_label = runs[runs[column] == v.model]
            rows = by_label if not by_label.empty else runs[runs["model"] == v.model]
        if rows is None or v.metric not in runs.columns or rows.empty:
            out.append(Match(v))
            continue
        rows = rows[rows[v.metric].notna()]
        if column == "base_label" and (rows.groupby(column)["label"].nunique() > 1).any():
            out.append(Match(v))  # split by metric options
            continue
        numbers = rows[v.metric].astype(float)
        std = float(numbers.std(ddof=1)) if len(numbers) > 1 else math.nan
        mean = float(numbers.mean()) if len(numbers) else math.nan
        out.append(Match(v, mean, std, len(numbers)))
    return out
