"""The report's sections beyond the main table: generation per sampler, the claims, and the
published values of the suite's protocol.

Each is a plain :class:`Section` (a title, one line saying how to read it, a header and text
rows) so that the Markdown and the HTML renderers format the same cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from aebench.experiments.claims import CONTRADICTED, HOLDS, Verdict
from aebench.experiments.protocols import ProtocolUse
from aebench.experiments.published import Match
from aebench.report.baseline import Comparison
from aebench.report.collect import ReportData
from aebench.report.columns import info, main_likelihood
from aebench.report.tables import (
    MISSING,
    Table,
    aggregate,
    best_rows,
    format_mean_std,
    likelihoods,
)

#: per sampler, the columns of the generation table
SAMPLER_COLUMNS = ("fid", "precision", "recall")


@dataclass
class Section:
    """A titled table of text cells. ``groups`` (HTML only) spans column-group captions over
    the header: ``[(caption, n_columns), ...]`` after the first column. ``bold`` marks cells
    (row, column) to emphasise; ``row_classes`` tags each row's ``class_column`` cell (e.g. a
    claim's verdict, coloured in HTML)."""

    id: str
    title: str
    intro: str
    header: list[str]
    rows: list[list[str]]
    groups: list[tuple[str, int]] = field(default_factory=list)
    bold: set[tuple[int, int]] = field(default_factory=set)
    row_classes: list[str] = field(default_factory=list)
    class_column: int = 1


MAIN_TABLE_ID = "main-table"


def first_column(table: Table) -> str:
    """The main table's first header: what its rows are (``Model`` or ``Model · Dataset``)."""
    names = {"label": "Model", "dataset": "Dataset", "arch": "Arch"}
    return " · ".join(names[k] for k in table.keys)


def main_section(table: Table) -> Section:
    """The results table: a row per model (and dataset, architecture), a cell per headline
    metric, the best of each column in bold, and the number of seeds."""
    seeds = [str(int(n)) for n in table.summary["n_runs"]]
    family = [[f or MISSING] for f in table.families] or [[] for _ in seeds]
    rows = [
        [name, *family[i], *(_main_cell(table, i, m) for m in table.columns), seeds[i]]
        for i, name in enumerate(table.row_names())
    ]
    first = 2 if table.families else 1
    bold = {
        (i, j)
        for i in range(len(rows))
        for j, m in enumerate(table.columns, start=first)
        if table.is_best(i, m)
    }
    return Section(
        id=MAIN_TABLE_ID,
        title="Results",
        intro=(
            "Mean ± std over seeds; the best value per column in bold; ↓/↑: lower/higher is "
            f"better; {MISSING}: not applicable to that model.{apart_note(table)}"
        ),
        header=[
            first_column(table),
            *(["Family"] if table.families else []),
            *(info(m).header for m in table.columns),
            "Seeds",
        ],
        rows=rows,
        bold=bold,
    )


#: marks a cell in the units of another decoder likelihood than most rows'
APART = "†"


def _main_cell(table: Table, row: int, metric: str) -> str:
    """The cell, marked :data:`APART` when it is not compared with the column's others."""
    text = table.cell(row, metric)
    return text if text == MISSING or table.is_compared(row, metric) else f"{text} {APART}"


def apart_note(table: Table) -> str:
    """The intro's sentence on the cells marked :data:`APART` ("" when there are none)."""
    apart, main = set(), set()
    for m in table.columns:
        liks = likelihoods(table.summary, m)
        marked = {lik for i, lik in enumerate(liks) if lik and not table.is_compared(i, m)}
        apart |= marked
        main |= {main_likelihood(liks)} if marked else set()
    if not apart:
        return ""
    return (
        f" {APART}: under a {' or '.join(sorted(apart))} decoder likelihood, in other units "
        f"than the {' or '.join(sorted(main))} likelihood of the other rows (a density over "
        "continuous pixels is not a probability), so neither bolded nor ranked."
    )


def _num(value: float, digits: int = 4) -> str:
    return MISSING if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def comparison_section(comp: Comparison) -> Section:
    """The baseline comparison: flagged rows first (regressions, then improvements), then the
    rest in table order; the status cell carries its class."""
    order = {"non-finite": 0, "regressed": 0, "improved": 1, "changed": 2}
    frame = comp.frame.assign(_o=comp.frame["status"].map(order).fillna(3))
    rows = []
    for _, r in frame.sort_values("_o", kind="stable").iterrows():
        delta = r["delta"]
        rel = r["rel_delta"]
        shown = MISSING
        if math.isfinite(delta):
            shown = f"{_num(delta, 3)} ({MISSING if not math.isfinite(rel) else f'{rel:+.1%}'})"
        rows.append([
            " · ".join(str(r[k]) for k in comp.keys),
            info(r["metric"]).header,
            format_mean_std(r["baseline_mean"], r["baseline_std"]),
            format_mean_std(r["current_mean"], r["current_std"]),
            shown,
            _num(r["p_value"], 2),
            str(r["status"]),
        ])  # fmt: skip
    counts = comp.frame["status"].value_counts()
    reg = int(counts.get("regressed", 0)) + int(counts.get("non-finite", 0))
    imp = int(counts.get("improved", 0))
    return Section(
        id="baseline-table",
        title="Baseline comparison",
        intro=(
            f"Against {comp.baseline_name}: {'REGRESSION' if reg else 'no regression'} — "
            f"{reg} regressed, {imp} improved (flagged when p < {comp.alpha:g} and |Δ| > "
            f"{comp.tolerance:.0%} of the baseline)."
        ),
        header=["Model", "Metric", "Baseline", "Current", "Δ", "p (Welch)", "Status"],
        rows=rows,
        row_classes=[row[-1] for row in rows],
        class_column=6,
    )


def samplers_in(data: ReportData) -> list[str]:
    """The samplers the runs have generation metrics for (``fid@NAME`` columns), in registry
    order (then any unknown ones, sorted)."""
    from aebench.metrics import samplers

    found = {m.split("@", 1)[1] for m in data.metrics if m.startswith("fid@")}
    order = [s for s in samplers.available() if s in found]
    return order + sorted(found - set(order))


def sampler_section(data: ReportData) -> Section | None:
    """FID, precision and recall once per sampler: the same weights, different code
    distributions (Ghosh et al. 2020 report an AE's FID from N(0, I) beside a GMM's)."""
    names = samplers_in(data)
    if not names:
        return None
    metrics = [f"{m}@{s}" for s in names for m in SAMPLER_COLUMNS]
    summary = aggregate(data, metrics)
    header = ["Model"]
    rows: list[list[str]] = []
    bold: set[tuple[int, int]] = set()
    for s in names:
        header += [info(m).header.replace(f" @{s}", "") for m in SAMPLER_COLUMNS]
    for i, row in enumerate(summary[data.keys].itertuples(index=False)):
        cells = [" · ".join(str(v) for v in row)]
        for m in metrics:
            cells.append(format_mean_std(summary[f"{m}_mean"].iloc[i], summary[f"{m}_std"].iloc[i]))
        rows.append(cells)
    for j, m in enumerate(metrics, start=1):
        bold |= {(i, j) for i in best_rows(summary, m)}
    return Section(
        id="sampler-table",
        title="Generation by sampler",
        intro=(
            "The same trained weights, decoded from each code distribution the model declares "
            "(prior: the model's own; normal: N(0, I); gaussian / gmm: a Gaussian / 10-component "
            "mixture fitted to the training codes). –: the model does not declare that sampler. "
            "The results table shows each model's default sampler."
        ),
        header=header,
        rows=rows,
        groups=[(s, len(SAMPLER_COLUMNS)) for s in names],
        bold=bold,
    )


def claims_section(verdicts: Sequence[Verdict]) -> Section:
    """One row per claim tested: verdict, the two sides' means ± std over seeds, Welch's p."""
    rows, classes = [], []
    for v in verdicts:
        where = f" [{v.group}]" if v.group else ""
        verdict = v.verdict + (f" ({v.why})" if v.why else "")
        rows.append([
            f"{v.claim.claim}{where}",
            verdict,
            f"{v.claim.a} {v.claim.a_metric}: {v.a_text}",
            f"{v.claim.b} {v.claim.b_metric}: {v.b_text}",
            v.p_text,
            v.claim.source,
        ])  # fmt: skip
        classes.append(
            {HOLDS: "holds", CONTRADICTED: "contradicted"}.get(v.verdict, "inconclusive")
        )
    return Section(
        id="claims-table",
        title="Claims",
        intro=(
            "Statements from the literature, tested on these runs with Welch's t-test over "
            "seeds: holds / contradicted when p < 0.05, else inconclusive (also with fewer than "
            "2 seeds); not testable when a side's runs were measured with different metric "
            "options (re-measure them with one setting). Suites add their own with [[claims]]."
            + ("" if rows else " No claim applies to the models of this suite.")
        ),
        header=["Claim", "Verdict", "Side A (mean ± std)", "Side B (mean ± std)", "p", "Source"],
        rows=rows,
        row_classes=classes,
    )


PUBLISHED_HEADER = ["Paper's model", "Metric", "Published", "Ours (mean ± std)", "Δ (our std)",
                    "Measured with", "Source"]  # fmt: skip


def published_section(matches: Sequence[Match], use: ProtocolUse) -> Section:
    """The protocol's published values — those with a matching model here first — with ours
    beside each and the difference in units of our seed std; each value's note once, as a
    numbered footnote."""
    rows, classes, notes = [], [], {}  # note → its footnote number
    for m in sorted(matches, key=lambda m: m.n == 0):
        v = m.published
        ours = "–" if m.n == 0 else f"{format_mean_std(m.mean, m.std)} (n={m.n})"
        z = "–" if m.z != m.z else f"{m.z:+.1f}"
        source = v.source + ("" if v.confirmed else " (not confirmed)")
        if v.note:
            source += f" [{notes.setdefault(v.note, len(notes) + 1)}]"
        count = {"nll_iw": f"K = {v.n_samples:,}", "active_units": ""}
        setting = [v.sampler, count.get(v.metric, f"n = {v.n_samples:,}"), v.features]
        rows.append([
            v.paper_model, v.metric, f"{v.value:g}", ours, z,
            "; ".join(p for p in setting if p and not p.startswith("none")) or "–", source,
        ])  # fmt: skip
        classes.append("matched" if m.n else "unmatched")
    departures = use.departures()
    caveat = (
        " This run departs from the protocol (" + "; ".join(departures) + "), so a difference "
        "measures that departure as much as the implementation."
        if departures
        else ""
    )
    footnotes = " ".join(f"[{i}] {note}" for note, i in notes.items())
    p = use.protocol
    return Section(
        id="published-table",
        title=f"Published values: {p.name}",
        intro=(
            f"{p.description}. Source: {p.source}. Δ = (ours − published) / our std over seeds"
            f" (– with fewer than 2 seeds, no spread, or no matching model here).{caveat} Known "
            f"differences even at full scale: {p.differences or 'none'}."
            + (f" Notes: {footnotes}" if footnotes else "")
        ),
        header=PUBLISHED_HEADER,
        rows=rows,
        row_classes=classes,
    )
