"""Welch's two-sided t-test over seeds, shared by the literature claims and the report's
baseline comparison and rank agreement, with the degenerate cases decided rather than left to
NaNs from scipy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Stat:
    """One side of a comparison: mean, sample std (ddof = 1) and count."""

    mean: float
    std: float
    n: int


def welch_p_from_stats(a: Stat, b: Stat) -> float:
    """Two-sided Welch t-test p-value from summaries (a report's table.csv is enough), with the
    degenerate cases decided: fewer than two values on a side give NaN (no test), zero
    variance on both sides gives 1 for equal means and 0 otherwise."""
    if a.n < 2 or b.n < 2 or not (math.isfinite(a.std) and math.isfinite(b.std)):
        return math.nan
    if a.std == 0 and b.std == 0:
        return 1.0 if a.mean == b.mean else 0.0
    from scipy import stats  # ~1.5 s to import; paid only when a test is actually run

    return float(
        stats.ttest_ind_from_stats(a.mean, a.std, a.n, b.mean, b.std, b.n, equal_var=False).pvalue
    )


def _stat(values: Sequence[float]) -> Stat:
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if len(x) < 2:
        return Stat(math.nan, math.nan, len(x))
    if np.ptp(x) == 0:  # exactly: a float mean of equal values may round off them
        return Stat(float(x[0]), 0.0, len(x))
    return Stat(float(x.mean()), float(x.std(ddof=1)), len(x))


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """:func:`welch_p_from_stats` of two samples' finite values."""
    return welch_p_from_stats(_stat(a), _stat(b))
