"""The one helper that lays out a plain-text table for the terminal.

``aebench runs``, a suite's closing summary and ``aebench speed`` print tables; they all go
through :func:`text_table`, so their columns line up the same way. The report files are
rendered elsewhere (pandas' Styler, :mod:`aebench.report`): this is only for a terminal.
"""

from __future__ import annotations

from collections.abc import Sequence

LEFT = "left"
RIGHT = "right"


def text_table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    align: str = LEFT,
    rule: bool = False,
) -> str:
    """``header`` and ``rows`` as columns two spaces apart, each as wide as its widest cell.

    ``align`` is ``"left"`` or ``"right"`` for every column; ``rule`` puts a line of dashes
    under the header. Trailing spaces are dropped, so a pasted table holds no invisible text.
    """
    if align not in (LEFT, RIGHT):
        raise ValueError(f"align must be {LEFT!r} or {RIGHT!r}, not {align!r}")
    table = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    if any(len(row) != len(header) for row in table):
        raise ValueError("every row needs one cell per header column")
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    pad = str.ljust if align == LEFT else str.rjust
    lines = ["  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in table]  # fmt: skip
    if rule:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
