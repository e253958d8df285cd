"""The speed gate's statistics: a distribution-free interval for the median slowdown, a verdict.

Each benchmark gives n paired ratios r_i = head time / base time from adjacent rounds. Noise on
a shared machine is bursty and one-sided (it only ever adds time), so a burst spoils a pair, not
the median. The interval for the median is the classic order-statistic one (the sign test
inverted, as ``scipy.stats.quantile_test`` computes it): [r_(k), r_(n+1-k)] with the largest k
for which a Binomial(n, 1/2) puts at most (1 - confidence)/2 below k. It assumes nothing about
the shape of the noise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

#: a benchmark is *slower* when the whole interval lies above 1 + threshold
THRESHOLD = 0.20
CONFIDENCE = 0.99
#: a FLOP count that grows by more than this fraction is a regression (counts are exact; the
#: margin only lets a change that adds a cheap operation pass)
FLOP_TOLERANCE = 0.02


def median_interval(
    ratios: list[float], confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """(low, median, high): the sample median of ``ratios`` and a distribution-free
    ``confidence`` interval for the true median (SciPy's ``quantile_test`` interval, the sign
    test inverted); (nan, median, nan) when n is too small for any interval at that confidence
    (n < 8 at 99 %)."""
    if not ratios:
        return math.nan, math.nan, math.nan
    median = statistics.median(ratios)
    if len(ratios) < 2:
        return math.nan, median, math.nan
    # deferred: SciPy's stats take ~1.5 s to import, which `gate speed --help` need not pay
    from scipy.stats import quantile_test

    interval = quantile_test(ratios, q=median, p=0.5).confidence_interval(confidence)
    return float(interval.low), median, float(interval.high)


@dataclass(frozen=True)
class Verdict:
    """``status`` is ``slower`` (fails the gate), ``noisy`` (too spread to judge), ``ok`` or
    ``faster``; ``reason`` says why in words."""

    status: str
    reason: str


def judge(
    low: float,
    high: float,
    base_counts: dict[str, int] | None = None,
    head_counts: dict[str, int] | None = None,
    threshold: float = THRESHOLD,
) -> Verdict:
    """The verdict for one benchmark: exact counts first (a new host read, more FLOPs), then
    the median ratio's interval against ``1 + threshold``."""
    if base_counts and head_counts:
        b, h = base_counts.get("host_reads", 0), head_counts.get("host_reads", 0)
        if h > b:
            return Verdict("slower", f"host reads per call {b} -> {h}")
        bf, hf = base_counts.get("flops", 0), head_counts.get("flops", 0)
        if hf > bf * (1 + FLOP_TOLERANCE) and hf - bf > 0:
            return Verdict("slower", f"FLOPs per call x{hf / max(bf, 1):.2f} ({bf:,} -> {hf:,})")
    limit = 1 + threshold
    if not (math.isfinite(low) and math.isfinite(high)):
        return Verdict("noisy", "too few rounds for an interval")
    if low > limit:
        return Verdict("slower", f"the whole interval is above x{limit:.2f}")
    if high <= limit:
        if high < 1 / limit:
            return Verdict("faster", f"the whole interval is below x{1 / limit:.2f}")
        return Verdict("ok", f"the interval stays below x{limit:.2f}")
    return Verdict("noisy", f"the interval straddles x{limit:.2f}")


__all__ = ["CONFIDENCE", "FLOP_TOLERANCE", "THRESHOLD", "Verdict", "judge", "median_interval"]
