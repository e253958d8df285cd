"""Does this suite rank the models as a reference report does?

A small suite earns its place only if it tells a reader what the large one would: the quick
suite (mnist-5k) is read as a stand-in for full MNIST. Per metric, the models are ordered by
mean in both reports and every pair the two orders disagree on is tested with Welch's t-test
(from the reports' mean, std and seed count, so the reference is just its ``table.csv``):

* *same order*: no pair is swapped;
* *same up to ties*: every swapped pair is indistinguishable (p ≥ alpha, or fewer than two
  seeds) in at least one of the two reports, so the orders differ only by seed noise;
* *differs*: some pair is significantly ordered one way here and the other way there, a real
  difference that the report's reader must be told the reason for.

Only metrics with a better direction, from the quality families, are compared: the speed
family measures the machine, not the model.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import pandas as pd

from aebench.core.errors import UsageError
from aebench.core.statistics import Stat, welch_p_from_stats
from aebench.metrics.family import FAMILIES, headline_keys
from aebench.report.columns import HIGHER, LOWER, compared, info
from aebench.report.ranking import neighbour_ties, order, shown
from aebench.report.render_csv import CSV_TRIGGERS
from aebench.report.sections import Section
from aebench.report.tables import likelihoods

SAME, TIES, DIFFERS = "same order", "same up to ties", "differs"


@dataclass(frozen=True)
class Swap:
    """A pair of models the two reports order differently, with both reports' numbers."""

    better_here: str
    worse_here: str
    here: tuple[Stat, Stat]
    there: tuple[Stat, Stat]
    p_here: float
    p_there: float

    def real(self, alpha: float) -> bool:
        return self.p_here < alpha and self.p_there < alpha

    def text(self, reference: str, alpha: float) -> str:
        def side(name: str, pair: tuple[Stat, Stat], p: float) -> str:
            tie = "" if p < alpha else (", a tie" if math.isfinite(p) else ", untested")
            p_text = f"p = {p:.2g}" if math.isfinite(p) else "< 2 seeds"
            return f"{name} {pair[0].mean:.4g} vs {pair[1].mean:.4g} ({p_text}{tie})"

        pair = f"{self.better_here} / {self.worse_here}"
        here = side("here", self.here, self.p_here)
        return f"{pair}: {here}; {side(reference, self.there, self.p_there)}"


@dataclass(frozen=True)
class MetricAgreement:
    """One metric's orders (best first) in both reports and the pairs they swap."""

    metric: str
    order_here: tuple[str, ...]
    order_there: tuple[str, ...]
    swaps: tuple[Swap, ...]
    alpha: float
    #: per neighbour pair of each order: True when the seeds cannot tell them apart
    tied_here: tuple[bool, ...] = ()
    tied_there: tuple[bool, ...] = ()

    def shown(self, here: bool = True) -> str:
        """An order as text, best first: ``a, b ≈ c`` (≈ joins neighbours that tie)."""
        if here:
            return shown(self.order_here, self.tied_here)
        return shown(self.order_there, self.tied_there)

    @property
    def verdict(self) -> str:
        if not self.swaps:
            return SAME
        return DIFFERS if any(s.real(self.alpha) for s in self.swaps) else TIES


@dataclass(frozen=True)
class Reference:
    """A reference report: its name (its folder's) and ``{label: {metric: Stat}}``."""

    name: str
    stats: dict[str, dict[str, Stat]]


def summary_stats(summary: pd.DataFrame, metrics: list[str], where: str) -> dict:
    """``{label: {metric: Stat}}`` from a table summary (``table.csv``'s columns), leaving out
    a metric in likelihood units where the row's likelihood is not the one most rows have.

    Linear in the rows (a reference table may be long): the duplicate check counts labels
    once, and each column is read once as an array rather than cell by cell."""
    if "label" not in summary.columns:
        raise UsageError(f"{where}: no 'label' column; is it a report's table.csv?")
    labels = [str(v) for v in summary["label"]]
    twice = sorted(label for label, n in Counter(labels).items() if n > 1)
    if twice:
        raise UsageError(
            f"{where}: model {twice[0]!r} has several rows (datasets or archs vary); a ranking "
            "comparison needs one row per model"
        )
    out: dict[str, dict[str, Stat]] = {label: {} for label in labels}
    nan = [math.nan] * len(labels)
    for m in metrics:
        if f"{m}_mean" not in summary.columns:
            continue
        means, stds, counts = (
            summary[f"{m}{s}"].to_numpy(dtype=float).tolist() if f"{m}{s}" in summary else nan
            for s in ("_mean", "_std", "_n")
        )
        kept = compared(likelihoods(summary, m), m)  # not a Gaussian's nats among Bernoullis'
        for label, mean, std, n, keep in zip(labels, means, stds, counts, kept, strict=True):
            if keep and math.isfinite(mean):  # without std or count: ordered, not tested
                out[label][m] = Stat(mean, std, int(n) if math.isfinite(n) else 0)
    return out


def load_reference(path: str | os.PathLike[str], metrics: list[str]) -> Reference:
    """A report folder or its ``table.csv``; a missing or unreadable one is a UsageError."""
    p = Path(path)
    csv = p / "table.csv" if p.is_dir() else p
    if not csv.is_file():
        raise UsageError(f"reference report {path}: no table.csv there (give a report folder)")
    try:
        frame = pd.read_csv(csv)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise UsageError(f"reference report {csv}: not a readable CSV ({e})") from None
    if not any(c.endswith("_mean") for c in frame.columns):
        raise UsageError(f"reference report {csv}: no <metric>_mean columns")
    for c in frame.columns:
        if c.endswith(("_mean", "_std", "_n")) and not pd.api.types.is_numeric_dtype(frame[c]):
            raise UsageError(f"reference report {csv}: column {c!r} is not numeric")
        values = frame[c].dropna()
        if c.endswith("_n") and not ((values >= 0) & (values < 2**31) & (values % 1 == 0)).all():
            raise UsageError(f"reference report {csv}: column {c!r} holds a non-count")
        if c.endswith("_std") and not ((values >= 0) & (values < math.inf)).all():
            raise UsageError(f"reference report {csv}: column {c!r} holds a negative or inf std")
    if "label" in frame.columns:  # a label table.csv protected from spreadsheets: as stored
        frame["label"] = frame["label"].map(_csv_unquoted)
    name = (p if p.is_dir() else p.parent).name or str(csv)
    return Reference(name, summary_stats(frame, metrics, str(csv)))


def _csv_unquoted(value: object) -> object:
    """A text cell without the ``'`` that :func:`~aebench.report.render_csv.csv_cell` put before
    text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(CSV_TRIGGERS):
        return value[1:]
    return value


def compared_metrics(available: list[str]) -> list[str]:
    """The headline metrics with a better direction, outside the speed family."""
    headline = headline_keys()  # imports (so registers) the built-in families first
    machine = {k.name for k in FAMILIES.get("speed").keys} if "speed" in FAMILIES else set()
    return [m for m in headline if m in available and m not in machine and info(m).better]


def agreement(
    here: dict[str, dict[str, Stat]],
    reference: Reference,
    metrics: list[str],
    alpha: float = 0.05,
) -> list[MetricAgreement]:
    """Per metric that both reports have for at least two shared models: the two orders and
    the pairs they swap (see the module doc)."""
    out = []
    for m in metrics:
        if info(m).better not in (LOWER, HIGHER):
            continue
        labels = [lab for lab in here if m in here[lab] and m in reference.stats.get(lab, {})]
        if len(labels) < 2:
            continue
        mine, theirs = order(here, labels, m), order(reference.stats, labels, m)
        rank_there = {lab: i for i, lab in enumerate(theirs)}
        swaps = []
        for a, b in combinations(mine, 2):  # a is ranked above b here
            if rank_there[a] < rank_there[b]:
                continue
            h = (here[a][m], here[b][m])
            t = (reference.stats[a][m], reference.stats[b][m])
            if h[0].mean == h[1].mean or t[0].mean == t[1].mean:
                continue  # an exact tie on either side orders nothing
            swaps.append(Swap(a, b, h, t, welch_p_from_stats(*h), welch_p_from_stats(*t)))
        out.append(
            MetricAgreement(m, tuple(mine), tuple(theirs), tuple(swaps), alpha,
                            neighbour_ties(here, mine, m, alpha),
                            neighbour_ties(reference.stats, theirs, m, alpha))
        )  # fmt: skip
    return out


def agreement_section(rows: list[MetricAgreement], reference: str, suite: str) -> Section:
    """One row per metric: both orders, the verdict, and each swapped pair's numbers."""
    alpha = rows[0].alpha if rows else 0.05
    return Section(
        id="agreement-table",
        title=f"Ranking against {reference}",
        intro=(
            f"Does {suite} order the models as the {reference} report does? Per metric, best "
            f"first (≈: neighbours the seeds cannot tell apart, p ≥ {alpha:g} or fewer than "
            f"2 seeds); a pair the two orders swap is tested with Welch's t-test in each report. "
            f"{SAME}: no swap; {TIES}: every swapped pair is a tie (p ≥ {alpha:g}) in one of "
            f"the two; {DIFFERS}: a pair significantly ordered both ways."
            + ("" if rows else " No metric is shared by two models of both reports.")
        ),
        header=["Metric", "Agreement", "Order here", f"Order in {reference}", "Swapped pairs"],
        rows=[
            [
                info(r.metric).header,
                r.verdict,
                r.shown(here=True),
                r.shown(here=False),
                "; ".join(s.text(reference, r.alpha) for s in r.swaps) or "–",
            ]
            for r in rows
        ],
        row_classes=[{SAME: "holds", DIFFERS: "contradicted"}.get(r.verdict, "") for r in rows],
    )
