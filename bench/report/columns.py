"""What each flat metric name means to a reader: its label, better direction and unit.

Nothing here is kept by hand: labels, units, directions and the headline set come from the
metric families' own :class:`~aebench.metrics.family.MetricKey` declarations, keyed by the same
flat names the metrics write into the store. A metric no family declares is still shown (in
``table.csv``) but never bolded or flagged: guessing a direction would risk calling an
improvement a regression.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from aebench.metrics.family import MetricKey, all_keys, headline_keys

LOWER = "lower"
HIGHER = "higher"


@dataclass(frozen=True)
class MetricInfo:
    """How one metric is shown: column label, better direction (or None), unit."""

    name: str
    label: str
    better: str | None = None
    unit: str = ""
    #: in the units of the model's decoder likelihood: compared only within one family
    per_likelihood: bool = False

    @property
    def arrow(self) -> str:
        """↓ when lower is better, ↑ when higher is better, nothing when neither."""
        return {LOWER: "↓", HIGHER: "↑"}.get(self.better or "", "")

    @property
    def header(self) -> str:
        """The column header with its arrow, e.g. ``FID ↓``."""
        return f"{self.label} {self.arrow}".strip()


#: the training history's curves (phase ``epoch-k``), which no metric family declares
_HISTORY = (
    MetricInfo("test_loss", "Test loss", LOWER),
    MetricInfo("train_loss", "Train loss", LOWER),
)


def _from_key(key: MetricKey) -> MetricInfo:
    better = {True: HIGHER, False: LOWER, None: None}[key.higher_is_better]
    return MetricInfo(key.name, key.label, better, key.unit, key.per_likelihood)


def known() -> dict[str, MetricInfo]:
    """Every key the registered metric families declare, plus the history curves."""
    return {**{k: _from_key(key) for k, key in all_keys().items()}, **{m.name: m for m in _HISTORY}}


def headline() -> tuple[str, ...]:
    """The main table's columns (:func:`aebench.metrics.family.headline_keys`)."""
    return headline_keys()


def info(name: str) -> MetricInfo:
    """The :class:`MetricInfo` for ``name``; an unknown metric gets its own name, no direction."""
    return known().get(name, MetricInfo(name, name, None))


def better(name: str) -> str | None:
    """``"lower"``, ``"higher"`` or None (no preferred direction / unknown metric)."""
    return info(name).better


def main_likelihood(likelihoods: Sequence[str]) -> str:
    """The likelihood family most rows declare ("" when none does); a tie goes to the one
    that comes first. Metrics in likelihood units are compared among its rows."""
    counts = Counter(lik for lik in likelihoods if lik)
    return counts.most_common(1)[0][0] if counts else ""


def compared(likelihoods: Sequence[str], metric: str) -> list[bool]:
    """Per row (one likelihood family each, "" where the model does not say): whether a
    report compares its ``metric`` with the others' (bolds, ranks, tests agreement). Every
    row, except for a metric in likelihood units (``MetricInfo.per_likelihood``): there a
    row of another family than :func:`main_likelihood`'s is in other units (a Gaussian's
    nats are of a density over continuous pixels, a Bernoulli's of a probability)."""
    main = main_likelihood(likelihoods)
    if not info(metric).per_likelihood or not main:
        return [True] * len(likelihoods)
    return [lik in ("", main) for lik in likelihoods]
