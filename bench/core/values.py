"""Checks and descriptions of plain values (numbers read from TOML, JSON or the command line)
that every layer's validation shares: is it a real int, a finite number, and how to name it in
a one-line error without writing out a 4,000-digit integer."""

from __future__ import annotations

import math
import sys
from typing import Any

#: the widest integer an option may hold: what torch and NumPy store (int64)
MAX_INT = 2**63 - 1


def describe(value: Any) -> str:
    """A short ``repr`` for error messages; a long integer by its number of digits (Python
    refuses to write out one of more than a few thousand)."""
    if is_int(value) and abs(value) >= 10**37:
        sign = "a negative" if value < 0 else "an"
        return f"{sign} integer of {_digits(abs(value)):,} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _digits(n: int) -> int:
    """The number of decimal digits of ``n`` >= 1, without converting it to text."""
    k = int(math.log10(n))
    while 10**k > n:
        k -= 1
    while 10 ** (k + 1) <= n:
        k += 1
    return k + 1


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A finite number, an int included if a float can hold it (``math.isfinite`` of a larger
    one raises OverflowError instead of answering)."""
    if is_int(value):
        return abs(value) <= sys.float_info.max
    return isinstance(value, float) and math.isfinite(value)
