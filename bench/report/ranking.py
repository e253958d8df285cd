"""The models ranked per metric, with the seeds' say on which neighbours differ.

A results table shows means ± std and bolds the best; a reader comparing eleven models wants the
order itself and to know which steps in it the seeds support. Per headline quality metric the
models are ordered by mean, best first, and each pair of neighbours is tested with Welch's
t-test from the table's mean, std and seed count: neighbours that the seeds cannot tell apart
(p ≥ alpha, or fewer than two seeds on a side) are joined by ``≈``, the others by ``,``. So
``vae-gan, ae ≈ vae, beta-vae`` reads: vae-gan is best; ae and vae tie; both beat beta-vae.

Only metrics with a better direction, outside the speed family, are ranked
(:func:`~aebench.report.agreement.compared_metrics`): speed measures the machine. The same order
and ties are what :mod:`aebench.report.agreement` compares against a reference report.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from aebench.core.statistics import Stat, welch_p_from_stats
from aebench.report.columns import HIGHER, LOWER, info
from aebench.report.sections import Section


def order(stats: dict[str, dict[str, Stat]], labels: list[str], metric: str) -> list[str]:
    """``labels`` sorted by their mean on ``metric``, best first."""
    sign = -1.0 if info(metric).better == HIGHER else 1.0
    return sorted(labels, key=lambda label: sign * stats[label][metric].mean)


def neighbour_ties(
    stats: dict[str, dict[str, Stat]], ordered: list[str], metric: str, alpha: float
) -> tuple[bool, ...]:
    """For each neighbour pair of ``ordered``: True when Welch's p ≥ alpha (or untestable)."""
    ps = [welch_p_from_stats(stats[a][metric], stats[b][metric]) for a, b in pairwise(ordered)]
    return tuple(not p < alpha for p in ps)


def shown(ordered: tuple[str, ...], tied: tuple[bool, ...]) -> str:
    """An order as text, best first: ``a, b ≈ c`` (``≈`` joins neighbours that tie)."""
    seps = [" ≈ " if t else ", " for t in tied] + [""] * len(ordered)
    return "".join(label + sep for label, sep in zip(ordered, seps, strict=False))


@dataclass(frozen=True)
class MetricRanking:
    """One metric's order of the models (best first) and which neighbours tie."""

    metric: str
    ordered: tuple[str, ...]
    tied: tuple[bool, ...]

    @property
    def text(self) -> str:
        return shown(self.ordered, self.tied)

    @property
    def distinct_steps(self) -> int:
        """How many neighbour steps the seeds support (p < alpha)."""
        return sum(not t for t in self.tied)


def rank(
    stats: dict[str, dict[str, Stat]], metrics: list[str], alpha: float = 0.05
) -> list[MetricRanking]:
    """Per metric that at least two models have: their order and neighbour ties."""
    out = []
    for m in metrics:
        if info(m).better not in (LOWER, HIGHER):
            continue
        labels = [label for label in stats if m in stats[label]]
        if len(labels) < 2:
            continue
        ordered = order(stats, labels, m)
        out.append(MetricRanking(m, tuple(ordered), neighbour_ties(stats, ordered, m, alpha)))
    return out


def ranking_section(rows: list[MetricRanking], alpha: float = 0.05) -> Section:
    """One row per metric: the models best first, ``≈`` between neighbours that tie."""
    return Section(
        id="ranking-table",
        title="Ranking",
        intro=(
            "Per metric, the models best first; ≈ joins neighbours the seeds cannot tell apart "
            f"(Welch's t-test, p ≥ {alpha:g}, or fewer than 2 seeds), a comma a step the seeds "
            "support. Speed is left out: it measures the machine, not the model."
        ),
        header=["Metric", "Best first", "Steps supported"],
        rows=[
            [info(r.metric).header, r.text, f"{r.distinct_steps} of {len(r.tied)}"] for r in rows
        ],
    )
