"""Write the report files: ``report.md``, ``report.html``, ``table.csv``, ``table.tex``.

Each renderer formats the same :class:`~aebench.report.tables.Table` cells, so the four files
never disagree. ``report.html`` embeds its images as base64 ``data:`` URIs and its CSS inline:
it is one file that opens from disk, from an e-mail or a CI artifact, with nothing beside it.

Text from a store, a suite's claims or a reference report (labels, dataset names, claim text)
is escaped for each format, so it shows as the text it is: NUL is dropped everywhere; Markdown
and LaTeX fold newlines and other control characters to spaces (a newline would end a table
row); Markdown escapes ``|``, HTML's ``< > &`` and what would make a link, an image,
emphasis or code (``[ ] ! * _`` and backticks), HTML escapes as HTML, LaTeX its specials;
a CSV text cell that a spreadsheet would run as a formula gets a leading ``'``
(:func:`csv_frame`).
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Collection
from pathlib import Path

from aebench.report.baseline import Comparison
from aebench.report.columns import info
from aebench.report.figures import FigureFile
from aebench.report.sections import Section
from aebench.report.tables import MISSING, Table, format_mean_std

MAIN_TABLE_ID = "main-table"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { padding: 0.3em 0.5em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #444; vertical-align: bottom; }
th.group { text-align: center; border-bottom: 1px solid #888; }
table.header td, table.header th { text-align: left; border: none; padding: 0.1em 0.7em; }
td.regressed, tr.contradicted td:nth-child(2) { color: #b00020; font-weight: bold; }
td.improved, tr.holds td:nth-child(2) { color: #087f23; font-weight: bold; }
#main-table td, #sampler-table td, #baseline-table td { white-space: nowrap; }
td .sd { display: block; color: #666; font-size: 0.85em; }
#claims-table td, #claims-table th, #agreement-table td, #agreement-table th { text-align: left; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; }
.note { color: #8a6d00; }
"""


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x01-\x1f\x7f\x85\u2028\u2029]")


def clean(text: object) -> str:
    """``text`` on one line: NUL dropped, newlines and other control characters as spaces."""
    return _CONTROL.sub(" ", str(text).replace("\x00", ""))


def _first_column(table: Table) -> str:
    names = {"label": "Model", "dataset": "Dataset", "arch": "Arch"}
    return " · ".join(names[k] for k in table.keys)


def _num(value: float, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.{digits}g}"


def _pct(value: float) -> str:
    return MISSING if value is None or not math.isfinite(value) else f"{value:+.1%}"


def _comparison_rows(comp: Comparison) -> list[list[str]]:
    """Flagged rows first (regressions, then improvements), then the rest, in table order."""
    order = {"regressed": 0, "improved": 1, "changed": 2}
    frame = comp.frame.assign(_o=comp.frame["status"].map(order).fillna(3))
    frame = frame.sort_values("_o", kind="stable")
    rows = []
    for _, r in frame.iterrows():
        rows.append(
            [
                " · ".join(str(r[k]) for k in comp.keys),
                info(r["metric"]).header,
                format_mean_std(r["baseline_mean"], r["baseline_std"]),
                format_mean_std(r["current_mean"], r["current_std"]),
                f"{_num(r['delta'], 3)} ({_pct(r['rel_delta'])})"
                if math.isfinite(r["delta"])
                else MISSING,
                _num(r["p_value"], 2),
                str(r["status"]),
            ]
        )
    return rows


_COMPARISON_HEADER = ["Model", "Metric", "Baseline", "Current", "Δ", "p (Welch)", "Status"]


def _comparison_summary(comp: Comparison) -> str:
    counts = comp.frame["status"].value_counts()
    reg, imp = int(counts.get("regressed", 0)), int(counts.get("improved", 0))
    verdict = "REGRESSION" if reg else "no regression"
    return (
        f"Against {comp.baseline_name}: {verdict} — {reg} regressed, {imp} improved "
        f"(flagged when p < {comp.alpha:g} and |Δ| > {comp.tolerance:.0%} of the baseline)."
    )


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------
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


def _md_table(
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


def main_rows(table: Table) -> list[list[str]]:
    """Body rows of the main table as text: the row's name, a cell per metric, the seeds."""
    seeds = [str(int(n)) for n in table.summary["n_runs"]]
    return [
        [name, *(table.cell(i, m) for m in table.columns), seeds[i]]
        for i, name in enumerate(table.row_names())
    ]


def best_cells(table: Table) -> set[tuple[int, int]]:
    """The (row, column) of every best cell of :func:`main_rows`."""
    return {
        (i, j)
        for i in range(len(table.row_names()))
        for j, m in enumerate(table.columns, start=1)
        if table.is_best(i, m)
    }


def _md_section(section: Section) -> list[str]:
    header = section.header
    if section.groups:  # Markdown has no column groups: name the group in each header
        names = [g for g, n in section.groups for _ in range(n)]
        header = [header[0]] + [f"{g}: {h}" for g, h in zip(names, header[1:], strict=True)]
    lines = ["", f"## {md_escape(section.title)}", "", md_escape(section.intro), ""]
    return lines + (_md_table(header, section.rows, bold=section.bold) if section.rows else [])


def markdown(
    header: dict[str, str],
    table: Table,
    figures: list[FigureFile],
    comparison: Comparison | None = None,
    sections: list[Section] | None = None,
) -> str:
    """``report.md``: GitHub-flavoured Markdown, figures linked as files beside it."""
    suite = clean(header.get("Suite", "")).replace("`", "'")  # in a code span: literal
    lines = [f"# aebench report — suite `{suite}`", ""]
    lines += [f"- **{md_escape(k)}:** {md_escape(v)}" for k, v in header.items()]
    lines += ["", "## Results", ""]
    lines += [
        f"Mean ± std over seeds; best per column in **bold**; ↓/↑: lower/higher is better; "
        f"{MISSING}: not applicable to that model.",
        "",
    ]
    cols = [_first_column(table)] + [info(m).header for m in table.columns] + ["Seeds"]
    lines += _md_table(cols, main_rows(table), bold=best_cells(table))
    for section in sections or []:
        lines += _md_section(section)
    if comparison is not None:
        lines += ["", "## Baseline comparison", "", md_escape(_comparison_summary(comparison)), ""]
        lines += _md_table(_COMPARISON_HEADER, _comparison_rows(comparison))
    lines += ["", "## Figures", ""]
    for f in figures:
        caption = md_escape(f.caption)
        lines += [f"### {caption}", "", f"![{caption}]({f.path.name})", ""]
        if f.hint:
            lines += [f"*{md_escape(f.hint)}*", ""]
        if f.problem:
            lines += [f"> Not drawn: {md_escape(f.problem)}", ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------
def _h(text: object) -> str:
    return html.escape(clean(text), quote=True)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_cell(text: str) -> str:
    """A main-table cell: the mean, and the ± std on a line of its own (narrow columns)."""
    mean, sep, std = text.partition(" ± ")
    return _h(mean) + (f'<span class="sd">± {_h(std)}</span>' if sep else "")


def _html_section(section: Section) -> list[str]:
    out = [f"<h2>{_h(section.title)}</h2>", f"<p>{_h(section.intro)}</p>"]
    if not section.rows:
        return out
    out.append(f'<table id="{_h(section.id)}"><thead>')
    if section.groups:
        out.append("<tr><th></th>" + "".join(
            f'<th class="group" colspan="{n}">{_h(g)}</th>' for g, n in section.groups
        ) + "</tr>")  # fmt: skip
    out.append("<tr>" + "".join(f"<th>{_h(h)}</th>" for h in section.header) + "</tr>")
    out.append("</thead><tbody>")
    for i, row in enumerate(section.rows):
        cls = section.row_classes[i] if i < len(section.row_classes) else ""
        cells = [
            f"<td><strong>{_html_cell(c)}</strong></td>"
            if (i, j) in section.bold
            else f"<td>{_html_cell(c)}</td>"
            for j, c in enumerate(row)
        ]
        out.append((f'<tr class="{_h(cls)}">' if cls else "<tr>") + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return out


def html_page(
    header: dict[str, str],
    table: Table,
    figures: list[FigureFile],
    comparison: Comparison | None = None,
    sections: list[Section] | None = None,
) -> str:
    """``report.html``: one self-contained page (inline CSS, images as data URIs)."""
    suite = header.get("Suite", "")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>aebench report — {_h(suite)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>aebench report — suite <code>{_h(suite)}</code></h1>",
        '<table class="header"><tbody>',
    ]
    out += [f"<tr><th>{_h(k)}</th><td>{_h(v)}</td></tr>" for k, v in header.items()]
    out += ["</tbody></table>", "<h2>Results</h2>"]
    out.append(
        "<p>Mean ± std over seeds; best per column in <strong>bold</strong>; ↓/↑: lower/higher "
        f"is better; {MISSING}: not applicable to that model.</p>"
    )
    out.append(f'<table id="{MAIN_TABLE_ID}"><thead><tr>')
    out.append(f"<th>{_h(_first_column(table))}</th>")
    out += [f'<th title="{_h(m)}">{_h(info(m).header)}</th>' for m in table.columns]
    out.append("<th>Seeds</th></tr></thead><tbody>")
    for i, name in enumerate(table.row_names()):
        cells = [f"<td>{_h(name)}</td>"]
        for m in table.columns:
            text = _html_cell(table.cell(i, m))
            cells.append(f"<td><strong>{text}</strong></td>" if table.is_best(i, m) else
                         f"<td>{text}</td>")  # fmt: skip
        cells.append(f"<td>{int(table.summary['n_runs'].iloc[i])}</td>")
        out.append('<tr class="model-row">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    for section in sections or []:
        out += _html_section(section)
    if comparison is not None:
        out += ["<h2>Baseline comparison</h2>", f"<p>{_h(_comparison_summary(comparison))}</p>"]
        out.append('<table id="baseline-table"><thead><tr>')
        out += [f"<th>{_h(c)}</th>" for c in _COMPARISON_HEADER]
        out.append("</tr></thead><tbody>")
        for row in _comparison_rows(comparison):
            status = row[-1]
            cells = [f"<td>{_h(c)}</td>" for c in row[:-1]]
            cells.append(f'<td class="{_h(status)}">{_h(status)}</td>')
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
    out.append("<h2>Figures</h2>")
    for f in figures:
        out.append(f'<figure><img src="{_data_uri(f.path)}" alt="{_h(f.caption)}">')
        hint = f"<br><em>{_h(f.hint)}</em>" if f.hint else ""
        out.append(f"<figcaption>{_h(f.caption)}{hint}</figcaption>")
        if f.problem:
            out.append(f'<p class="note">Not drawn: {_h(f.problem)}</p>')
        out.append("</figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# LaTeX and CSV
# --------------------------------------------------------------------------------------------
_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip
_TEX_SYMBOLS = {"±": r"$\pm$", "↓": r"$\downarrow$", "↑": r"$\uparrow$", MISSING: "--", "·": "/"}


def tex_escape(text: str) -> str:
    """Escape LaTeX specials and turn ±, arrows and the dash into math/text equivalents; one
    line (:func:`clean`: a newline in a cell would end the row's paragraph)."""
    out = "".join(_TEX_SPECIAL.get(ch, ch) for ch in clean(text))
    for sym, rep in _TEX_SYMBOLS.items():
        out = out.replace(sym, rep)
    return out


def latex(table: Table, caption: str = "") -> str:
    """``table.tex``: a booktabs ``tabular`` (wrapped in a ``table`` float) ready to ``\\input``.

    Needs ``\\usepackage{booktabs}`` in the paper's preamble.
    """
    spec = "l" + "r" * (len(table.columns) + 1)
    header = [_first_column(table)] + [info(m).header for m in table.columns] + ["Seeds"]
    lines = [
        r"% generated by aebench report; needs \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(tex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    best = best_cells(table)
    for i, row in enumerate(main_rows(table)):
        cells = [
            rf"\textbf{{{tex_escape(c)}}}" if (i, j) in best else tex_escape(c)
            for j, c in enumerate(row)
        ]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{tex_escape(caption)}}}")
    lines += [r"\end{table}", ""]
    return "\n".join(lines)
