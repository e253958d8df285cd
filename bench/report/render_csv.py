"""The report's CSV files (``table.csv``, ``claims.csv``, ``comparison.csv``), made safe to open
in a spreadsheet: text that starts like a formula is quoted, NUL is dropped."""

from __future__ import annotations

import re
from typing import Any

from aebench.report.tables import Table

#: a cell starting with one of these may run as a formula in a spreadsheet (OWASP)
CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|nan)$", re.I)


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs: NUL dropped, and text that starts like a formula
    gets a leading ``'`` (OWASP's advice on CSV injection). Numbers, and text that is only
    numbers (``-0.5``, a claim's ``-0.5 -0.4`` seed values), are left as they are."""
    if not isinstance(value, str):
        return value
    value = value.replace("\x00", "")
    if value.startswith(CSV_TRIGGERS) and not all(_NUMBER.match(v) for v in value.split()):
        return "'" + value
    return value


def csv_frame(frame: Any) -> Any:
    """``frame`` with every text cell through :func:`csv_cell` (a copy; headers too)."""
    import pandas as pd  # deferred: pandas takes ~1 s to import

    out = frame.copy()
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):  # object or string columns
            out[col] = out[col].map(csv_cell)
    out.columns = [csv_cell(c) for c in out.columns]
    return out


def csv_text(frame: Any) -> str:
    """The CSV text of ``frame``, made safe by :func:`csv_frame`."""
    return csv_frame(frame).to_csv(index=False)


def table_csv(table: Table) -> str:
    """The text of ``table.csv``: every final metric's mean, std and count per row, at full
    precision."""
    frame = table.summary.copy()
    frame.insert(0, "row", table.row_names())
    return csv_text(frame)
