"""The main table: mean ± std over seeds per model, best value per column in bold.

Numbers are aggregated once, here, into a plain DataFrame (``Table.summary``) that the CSV is
written from verbatim, so every rendered cell can be traced to a number a test can recompute
with pandas. Rendering (Markdown, HTML, LaTeX) only formats these numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from aebench import models
from aebench.report.collect import ReportData
from aebench.report.columns import HIGHER, LOWER, compared, headline, info

MISSING = "–"


@dataclass
class Table:
    """Aggregated numbers for one report.

    ``summary`` has the key columns, ``n_runs``, and for every metric ``<m>_mean``, ``<m>_std``
    (sample std, ddof=1; NaN with one seed) and ``<m>_n`` (runs that recorded it). ``columns``
    are the metrics shown in the main table; ``best`` maps each of them to the row positions
    holding the best mean (ties all count), respecting the metric's direction.
    """

    keys: list[str]
    metrics: list[str]
    columns: list[str]
    summary: pd.DataFrame
    best: dict[str, set[int]] = field(default_factory=dict)
    #: each row's model family (``models.base.FAMILIES``; "" where unknown); empty when no
    #: row's model says, and then the rows keep the suite's order
    families: list[str] = field(default_factory=list)
    _compared: dict[str, list[bool]] = field(default_factory=dict, repr=False, compare=False)

    def row_names(self) -> list[str]:
        """One readable name per row: ``vae`` or ``vae · mnist · conv``."""
        return [
            " · ".join(str(v) for v in row)
            for row in self.summary[self.keys].itertuples(index=False)
        ]

    def mean(self, row: int, metric: str) -> float:
        return float(self.summary[f"{metric}_mean"].iloc[row])

    def std(self, row: int, metric: str) -> float:
        return float(self.summary[f"{metric}_std"].iloc[row])

    def cell(self, row: int, metric: str) -> str:
        """``mean ± std`` (just ``mean`` with one seed), or ``–`` if the model lacks it."""
        return format_mean_std(self.mean(row, metric), self.std(row, metric))

    def is_best(self, row: int, metric: str) -> bool:
        return row in self.best.get(metric, set())

    def is_compared(self, row: int, metric: str) -> bool:
        """Whether the row's ``metric`` is compared with the other rows' (``columns.compared``:
        not when it is in the units of another decoder likelihood); one mask per column."""
        if metric not in self._compared:
            self._compared[metric] = compared(likelihoods(self.summary, metric), metric)
        return self._compared[metric][row]


def _decimals(value: float) -> int:
    """Decimals that give about three significant digits (none for big numbers)."""
    if not math.isfinite(value) or value == 0:
        return 2
    magnitude = math.floor(math.log10(abs(value)))
    return int(min(6, max(0, 2 - magnitude)))


def format_mean_std(mean: float, std: float) -> str:
    """Format a cell; NaN or inf mean means "not applicable" and shows as ``–``."""
    if mean is None or not math.isfinite(mean):
        return MISSING
    has_std = std is not None and math.isfinite(std)
    if 0 < abs(mean) < 1e-3:  # e.g. KID: scientific notation keeps three significant digits
        return f"{mean:.2e}" + (f" ± {std:.1e}" if has_std else "")
    d = _decimals(mean)
    has_std = std is not None and math.isfinite(std)
    if has_std and std > 0:
        # show the std to at least one significant digit, at most two decimals more than the mean
        d = max(d, min(-math.floor(math.log10(std)), d + 2, 8))
    text = f"{mean:.{d}f}"
    if has_std:
        text += f" ± {std:.{d}f}"
    return text


def aggregate(data: ReportData, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, std (ddof=1) and count of each metric over the seeds of each row key."""
    metrics = list(metrics if metrics is not None else data.metrics)
    runs = data.runs
    grouped = runs.groupby(data.keys, sort=False, dropna=False)
    out = grouped.size().rename("n_runs").reset_index()
    if "likelihood" in runs:  # one model's runs share their options, so their likelihood
        out = out.merge(grouped["likelihood"].first().reset_index(), on=data.keys, how="left")
    for m in metrics:
        values = runs[m] if m in runs else pd.Series(math.nan, index=runs.index)
        stats = values.groupby([runs[k] for k in data.keys], sort=False, dropna=False).agg(
            ["mean", "std", "count"]
        )
        stats.columns = [f"{m}_mean", f"{m}_std", f"{m}_n"]
        out = out.merge(stats.reset_index(), on=data.keys, how="left")
    return out


def likelihoods(summary: pd.DataFrame, metric: str) -> list[str]:
    """Each summary row's decoder likelihood family where the row has a value of ``metric``
    ("" elsewhere, where unknown, or with no such column: a ``table.csv`` written before
    reports recorded it), so the family most rows have is counted among the rows that have
    the metric, not among models without it (an AE declares a Bernoulli decoder too)."""
    if "likelihood" not in summary:
        return [""] * len(summary)
    column = f"{metric}_mean"
    means = summary[column].astype(float) if column in summary else [math.nan] * len(summary)
    return [
        lik if isinstance(lik, str) and math.isfinite(mean) else ""
        for lik, mean in zip(summary["likelihood"], means, strict=True)
    ]


def best_rows(summary: pd.DataFrame, metric: str) -> set[int]:
    """Row positions whose mean is best for ``metric`` among the rows compared on it
    (:func:`~aebench.report.columns.compared`); empty when it has no direction or fewer than
    two such rows have a value — a lone number is not "best" of anything."""
    direction = info(metric).better
    means = summary[f"{metric}_mean"].astype(float).reset_index(drop=True)
    kept = pd.Series(compared(likelihoods(summary, metric), metric), dtype=bool)
    valid = means[means.map(math.isfinite).astype(bool) & kept]
    if direction not in (LOWER, HIGHER) or len(valid) < 2:
        return set()
    target = valid.min() if direction == LOWER else valid.max()
    return {i for i, v in valid.items() if v == target}


def build_table(data: ReportData, columns: Sequence[str] | None = None) -> Table:
    """The main table for ``data``: headline metrics that at least one run recorded."""
    wanted = list(columns if columns is not None else headline())
    shown = [m for m in wanted if m in data.runs and data.runs[m].notna().any()]
    extra = [m for m in data.metrics if m not in shown]
    summary, families = by_family(data, aggregate(data, shown + extra))
    return Table(
        keys=list(data.keys),
        metrics=shown + extra,
        columns=shown,
        summary=summary,
        best={m: best_rows(summary, m) for m in shown},
        families=families,
    )


def by_family(data: ReportData, summary: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``summary``'s rows grouped by their model's family, in the order of ``FAMILIES`` (the
    suite's order within a family, unknown families last), and each row's family; unchanged,
    with no families, when no row's model declares one (a plugin-only suite)."""
    model_of = dict(zip(data.runs["label"], data.runs["model"], strict=False))
    families = [models.family_of(model_of.get(label)) for label in summary["label"]]
    if not any(families):
        return summary, []
    rank = {f: i for i, f in enumerate(models.FAMILIES)}
    order = sorted(range(len(families)), key=lambda i: (rank.get(families[i], len(rank)), i))
    return summary.iloc[order].reset_index(drop=True), [families[i] for i in order]
