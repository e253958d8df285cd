"""``report.html`` and ``table.tex``: every table rendered by pandas' Styler, the page laid out
by one jinja2 template (``templates/report.html.j2``).

A :class:`~aebench.report.sections.Section`'s text cells become a DataFrame whose column labels
are ``(group, header, position)``: the position keeps the labels unique, which Styler needs to
class cells, and is hidden when rendered. Styler escapes every cell and header for the output's
format (``escape="html"`` / ``"latex"``) before aebench's own formatter touches it, so a label
holding ``<script>`` or ``\\input`` shows as that text. The page template autoescapes the rest.

``report.html`` embeds its images as base64 ``data:`` URIs and its CSS inline: it is one file
that opens from disk, from an e-mail or a CI artifact, with nothing beside it.
"""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

from aebench.report.figures import FigureFile
from aebench.report.render_md import clean
from aebench.report.sections import Section

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
#: how a LaTeX table shows what Styler's escaping leaves as Unicode
_TEX_SYMBOLS = {"±": r"$\pm$", "↓": r"$\downarrow$", "↑": r"$\uparrow$", "–": "--", "·": "/",
                "†": r"\dag{}"}  # fmt: skip


def section_frame(section: Section) -> pd.DataFrame:
    """The section's cells (each on one line, :func:`~aebench.report.render_md.clean`) under
    column labels ``(group, header, position)``, or ``(header, position)`` without groups."""
    groups = [""] + [g for g, n in section.groups for _ in range(n)]
    labels = [
        (groups[j], clean(h), str(j)) if section.groups else (clean(h), str(j))
        for j, h in enumerate(section.header)
    ]
    cells = [[clean(c) for c in row] for row in section.rows]
    return pd.DataFrame(cells, columns=pd.MultiIndex.from_tuples(labels))


def _styler(section: Section, escape: str, text: object) -> pd.io.formats.style.Styler:
    """A Styler of the section's frame: no index, no position row, cells and headers escaped
    for ``escape`` and then passed through ``text``."""
    frame = section_frame(section)
    return (
        frame.style.hide(axis="index")
        .hide(axis="columns", level=frame.columns.nlevels - 1)
        .format(text, escape=escape)
        .format_index(text, escape=escape, axis="columns")
    )


def _cell_classes(section: Section, frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell: ``best`` where the section bolds it, plus its row's class in its column."""
    classes = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for i, j in section.bold:
        classes.iat[i, j] = "best"
    for i, cls in enumerate(section.row_classes[: len(frame)]):
        if cls:
            column = section.class_column
            classes.iat[i, column] = f"{classes.iat[i, column]} {cls}".strip()
    return classes


def _html_text(text: str) -> Markup:
    """An escaped cell: the mean, and the ± std on a line of its own (narrow columns).

    Styler has escaped ``text`` already (into :class:`~markupsafe.Markup`); it is split as plain
    text and marked safe again, so the span is not escaped a second time."""
    mean, sep, std = str(text).partition(" ± ")
    return Markup(mean + (f'<span class="sd">± {std}</span>' if sep else ""))


def html_table(section: Section) -> str:
    """The section's ``<table>``, its bold cells classed ``best``."""
    styler = _styler(section, "html", _html_text)
    styler.set_td_classes(_cell_classes(section, styler.data))
    return styler.to_html(table_uuid=section.id)


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip


def tex_escape(text: str) -> str:
    """LaTeX's specials escaped, for the one string Styler does not escape: the caption."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def _tex_text(text: str) -> str:
    for symbol, tex in _TEX_SYMBOLS.items():
        text = text.replace(symbol, tex)
    return text


def latex(section: Section, caption: str) -> str:
    """``table.tex``: the section as a booktabs ``tabular`` in a ``table`` float, ready to
    ``\\input`` (needs ``\\usepackage{booktabs}`` in the paper's preamble)."""
    styler = _styler(section, "latex", _tex_text)
    styler.apply(lambda _: _bold_css(section, styler.data), axis=None)
    styler.set_table_styles([{"selector": "small", "props": ":;"}], overwrite=False)
    body = styler.to_latex(
        column_format="l" + "r" * (len(section.header) - 1),
        position="t",
        position_float="centering",
        hrules=True,
        caption=_tex_text(tex_escape(clean(caption))),
        environment="table",
    )
    return "% generated by aebench report; needs \\usepackage{booktabs}\n" + body


def _bold_css(section: Section, frame: pd.DataFrame) -> pd.DataFrame:
    """Styler's LaTeX styling for the bold cells: ``\\textbf{...}`` around the cell."""
    css = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for i, j in section.bold:
        css.iat[i, j] = "textbf: --rwrap;"
    return css


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def html_page(header: dict[str, str], sections: list[Section], figures: list[FigureFile]) -> str:
    """The text of ``report.html``: one self-contained page."""
    tables = [
        {
            "id": s.id,
            "title": clean(s.title),
            "intro": clean(s.intro),
            "table": Markup(html_table(s)) if s.rows else "",
        }
        for s in sections
    ]
    pictures = [
        {
            "uri": _data_uri(f.path),
            "caption": clean(f.caption),
            "hint": clean(f.hint),
            "problem": clean(f.problem or ""),
        }
        for f in figures
    ]
    return _TEMPLATES.get_template("report.html.j2").render(
        suite=clean(header.get("Suite", "")),
        header={clean(k): clean(v) for k, v in header.items()},
        sections=tables,
        figures=pictures,
    )
