"""``report.md``: GitHub-flavoured Markdown, the figures linked as files beside it.

pandas' Styler has no Markdown output, so the pipe tables are laid out here, from the same
:class:`~aebench.report.sections.Section` cells the HTML and LaTeX renderers format.

Text from a store, a suite's claims or a reference report (labels, dataset names, claim text)
is escaped so it shows as the text it is (:func:`md_escape`): one line, no raw HTML, no link,
image, emphasis or code it did not ask for, and no ``|`` that would split a cell.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from aebench.report.figures import FigureFile
from aebench.report.sections import Section

_CONTROL = re.compile(r"[\x01-\x1f\x7f\x85\u2028\u2029]")


def clean(text: object) -> str:
    """``text`` on one line: NUL dropped, newlines and other control characters as spaces."""
    return _CONTROL.sub(" ", str(text).replace("\x00", ""))


_MD_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\\": "\\\\"}
_MD_SPECIAL.update({ch: "\\" + ch for ch in "[]!*_`"})
#: underscores between two letters or digits: CommonMark never reads them as emphasis
_WORD_UNDERSCORES = re.compile(r"(?<=[^\W_])_+(?=[^\W_])")


def md_escape(text: object) -> str:
    """Text for Markdown: one line (:func:`clean`), HTML's ``< > &`` as entities (no raw HTML
    gets through), ``|`` escaped (it would split a table cell) and so ``\\`` (else ``\\|``
    would be an escaped backslash and a bare ``|``), and ``[ ] ! * _`` and backticks escaped
    so a label like ``![x](https://host/t.png)`` is not a remote image, a link, emphasis or
    code. An ``_`` inside a word (``recon_mse``) is left as it is: it cannot start emphasis."""
    line = clean(text)
    keep = {i for m in _WORD_UNDERSCORES.finditer(line) for i in range(m.start(), m.end())}
    return "".join(ch if i in keep else _MD_SPECIAL.get(ch, ch) for i, ch in enumerate(line))


def md_table(
    header: list[str], rows: list[list[str]], bold: Collection[tuple[int, int]] = frozenset()
) -> list[str]:
    """A Markdown table of escaped cells, the cells (row, column) in ``bold`` emphasised after
    escaping (so the emphasis is Markdown's and a cell's own ``*`` stays text)."""
    body = [
        [f"**{md_escape(c)}**" if (i, j) in bold else md_escape(c) for j, c in enumerate(row)]
        for i, row in enumerate(rows)
    ]
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    return lines + ["| " + " | ".join(cells) + " |" for cells in body]


def _md_section(section: Section) -> list[str]:
    header = section.header
    if section.groups:  # Markdown has no column groups: name the group in each header
        names = [g for g, n in section.groups for _ in range(n)]
        header = [header[0]] + [f"{g}: {h}" for g, h in zip(names, header[1:], strict=True)]
    lines = ["", f"## {md_escape(section.title)}", "", md_escape(section.intro), ""]
    return lines + (md_table(header, section.rows, bold=section.bold) if section.rows else [])


def _md_figure(figure: FigureFile) -> list[str]:
    caption = md_escape(figure.caption)
    lines = [f"### {caption}", "", f"![{caption}]({figure.path.name})", ""]
    if figure.hint:
        lines += [f"*{md_escape(figure.hint)}*", ""]
    if figure.problem:
        lines += [f"> Not drawn: {md_escape(figure.problem)}", ""]
    return lines


def markdown(header: dict[str, str], sections: list[Section], figures: list[FigureFile]) -> str:
    """The text of ``report.md``: the header, each section's table, then the figures."""
    suite = clean(header.get("Suite", "")).replace("`", "'")  # in a code span: literal
    lines = [f"# aebench report — suite `{suite}`", ""]
    lines += [f"- **{md_escape(k)}:** {md_escape(v)}" for k, v in header.items()]
    for section in sections:
        lines += _md_section(section)
    lines += ["", "## Figures", ""]
    for figure in figures:
        lines += _md_figure(figure)
    return "\n".join(lines).rstrip() + "\n"
