"""What each flat metric name means to a reader: its label, better direction and unit.

Nothing here is kept by hand: labels, units, directions and the headline set come from the
metric families' own :class:`~aebench.metrics.family.MetricKey` declarations, keyed by the same
flat names the metrics write into the store. A metric no family declares is still shown (in
``table.csv``) but never bolded or flagged: guessing a direction would risk calling an
improvement a regression.
"""

from __future__ import annotations

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
    return MetricInfo(key.name, key.label, better, key.unit)


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
