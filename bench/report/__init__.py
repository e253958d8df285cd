"""Comparison reports from the results store (issue 5).

``build_report(store, out)`` reads the finished runs of one suite and writes into ``out``:
``report.md``, ``report.html`` (self-contained), ``table.csv``, ``table.tex`` and the figure
PNGs; with ``baseline=`` also ``comparison.csv`` and a delta table in both reports. The folder
is replaced whole, never left half-written (:mod:`aebench.report.outdir`). The pieces
are small modules with plain values between them::

    collect.load(store)  ──▶ ReportData ──▶ tables.build_table ──▶ Table
                                   │                                  │
                                   ├──▶ figures.make_figures ◀────────┤
                                   ├──▶ baseline.compare ──▶ Comparison │
                                   └──▶ sections.* ◀──────────────────┘
                                             │  Section: a title and text cells
                                             ▼
          render_md.markdown (report.md) · render_styled: pandas' Styler + one jinja2
          template (report.html, table.tex) · render_csv (the CSV files)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aebench.core.errors import UsageError
from aebench.experiments.claims import BUILTIN, Claim, Verdict, check
from aebench.experiments.protocols import ProtocolUse
from aebench.experiments.published import load_published, match
from aebench.report import baseline as _baseline
from aebench.report import collect, render_csv, render_md, render_styled
from aebench.report.agreement import (
    MetricAgreement,
    agreement,
    agreement_section,
    compared_metrics,
    load_reference,
    summary_stats,
)
from aebench.report.baseline import DEFAULT_ALPHA, DEFAULT_TOLERANCE, Comparison
from aebench.report.collect import ReportData
from aebench.report.figures import FigureFile, make_figures
from aebench.report.outdir import staged
from aebench.report.ranking import rank, ranking_section
from aebench.report.sections import (
    Section,
    apart_note,
    claims_section,
    comparison_section,
    main_section,
    published_section,
    sampler_section,
)
from aebench.report.tables import Table, build_table
from aebench.store.database import Store


@dataclass
class ReportResult:
    """What :func:`build_report` wrote and found. ``exit_code`` is what CI should return."""

    out: Path
    data: ReportData
    table: Table
    figures: list[FigureFile] = field(default_factory=list)
    comparison: Comparison | None = None
    files: list[Path] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)  #: the claims tested
    #: per metric, this suite's ranking against the ``reference`` report's
    agreements: list[MetricAgreement] = field(default_factory=list)
    reference: str | None = None  #: the reference report's name

    @property
    def regressed(self) -> bool:
        return self.comparison is not None and self.comparison.regressed

    @property
    def exit_code(self) -> int:
        """1 when the baseline comparison found a regression, else 0."""
        return 1 if self.regressed else 0


def build_report(
    store: Store | str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    suite: str | None = None,
    baseline: str | os.PathLike[str] | None = None,
    *,
    figures: bool = True,
    alpha: float = DEFAULT_ALPHA,
    tolerance: float = DEFAULT_TOLERANCE,
    metrics: list[str] | None = None,
    claims: tuple[Claim, ...] = (),
    protocol: ProtocolUse | None = None,
    published: str | os.PathLike[str] | None = None,
    reference: str | os.PathLike[str] | None = None,
) -> ReportResult:
    """Build the report of ``suite`` (default: the newest suite with finished runs) into ``out``.

    ``store`` is a :class:`Store` or a path (None: the default store). ``baseline`` is another
    store's path or a suite name in the same store; ``metrics`` limits what the baseline
    comparison tests (default: the headline metrics). ``figures=False`` skips the PNGs (fast,
    for CI regression checks). ``claims`` are tested beside the built-in ones (a suite's
    ``[[claims]]``). With the suite's ``protocol``, the published values of that protocol
    (from ``published``, default the shipped file) get a section beside ours. ``reference``
    (another report's folder or table.csv) adds a section asking whether this suite ranks the
    models as that report does (:mod:`aebench.report.agreement`).

    ``out`` is replaced whole (:mod:`aebench.report.outdir`): the files are written beside it and
    swapped in at the end, so a reader, a full disk or a kill sees the previous report or the
    new one, never a mix. Raises :class:`~aebench.core.errors.UsageError` for a missing store or
    suite, an unusable ``out`` (not a folder, or holding files a report did not write), a file
    that cannot be written (naming it), a bad published-values file or reference report.
    """
    values = load_published(published) if protocol is not None or published else []
    if published is not None and protocol is None:
        raise UsageError(
            "--published needs --suite naming a suite that follows a protocol ([protocol] in "
            "its TOML): published values are matched to runs through it"
        )
    data = collect.load(store, suite)
    table = build_table(data)
    agreements, ref_name = [], None
    ranked = compared_metrics(table.metrics)
    if reference is not None:  # every check before the out folder is touched
        ref = load_reference(reference, ranked)
        here = summary_stats(table.summary, ranked, f"suite {data.suite}")
        agreements, ref_name = agreement(here, ref, ranked, alpha), ref.name
    verdicts = check(data.runs, (*BUILTIN, *claims), [k for k in data.keys if k != "label"])
    sections = [s for s in (sampler_section(data), claims_section(verdicts)) if s is not None]
    sections += _ranking(table, ranked, alpha)
    if ref_name is not None:
        sections.append(agreement_section(agreements, ref_name, data.suite))
    header = {**data.header, "Headline sampler": headline_samplers(data)}
    if protocol is not None:
        header["Protocol"] = _protocol_line(protocol, data)
        sections.append(published_section(match(values, protocol.name, data.runs), protocol))
    comparison = None
    if baseline is not None:
        base, name = _baseline.load_baseline(baseline, data)
        comparison = _baseline.compare(data, base, metrics, alpha, tolerance, name)
    out_dir, drawn, files = _write(
        out, data, table, header, comparison, sections, verdicts, figures
    )
    return ReportResult(
        out_dir, data, table, drawn, comparison, files, verdicts, agreements, ref_name
    )


def _ranking(table: Table, metrics: list[str], alpha: float) -> list[Section]:
    """The ranking section, where each model has one row (one dataset and architecture) and
    there are at least three models: with two, the results table says it all."""
    labels = [str(v) for v in table.summary["label"]]
    if len(labels) < 3 or len(set(labels)) < len(labels):
        return []
    rows = rank(summary_stats(table.summary, metrics, "this report"), metrics, alpha)
    return [ranking_section(rows, alpha)] if rows else []


def _protocol_line(protocol: ProtocolUse, data: ReportData) -> str:
    """The header's protocol line; it says so when the runs trained for another budget than
    the suite file now asks for (the file changed after the runs)."""
    line = protocol.describe()
    trained = f"{protocol.epochs:g} epochs"
    if data.header.get("Budget") != trained:
        line += (
            f" — but these runs trained for {data.header.get('Budget')}, not the suite "
            f"file's {trained}: the departures above describe the file, not the runs"
        )
    return line


def _write(
    out: str | os.PathLike[str],
    data: ReportData,
    table: Table,
    header: dict[str, str],
    comparison: Comparison | None,
    sections: list[Section],
    verdicts: list[Verdict],
    figures: bool,
) -> tuple[Path, list[FigureFile], list[Path]]:
    """Render every file into a staged folder and swap it in as ``out`` whole: (the folder,
    its figures, every file written)."""
    with staged(out) as stage:
        drawn = make_figures(data, table, stage.folder, stage.write) if figures else []
        main = main_section(table)
        tables = [main, *sections]
        if comparison is not None:
            tables.append(comparison_section(comparison))
        texts = {
            "report.md": render_md.markdown(header, tables, drawn),
            "report.html": render_styled.html_page(header, tables, drawn),
            "table.tex": render_styled.latex(
                main, f"aebench suite {data.suite}: mean ± std over seeds.{apart_note(table)}"
            ),
            "table.csv": render_csv.table_csv(table),
            "comparison.csv": None if comparison is None else render_csv.csv_text(comparison.frame),
            "claims.csv": render_csv.csv_text(claims_frame(verdicts)),
        }
        for name, text in texts.items():
            if text is not None:
                stage.text(name, text)
        stage.commit()
    out_dir = stage.target
    for f in drawn:
        f.path = out_dir / f.path.name
    files = [f.path for f in drawn] + [out_dir / n for n, t in texts.items() if t is not None]
    return out_dir, drawn, files


def headline_samplers(data: ReportData) -> str:
    """Which sampler the results table's generation columns show, per model label: the one a
    suite's ``[metrics] sampler`` chose, else each model's ``default_sampler``."""
    from aebench import models

    chosen = {}
    for label, model, sampler in data.runs[["label", "model", "sampler"]].itertuples(index=False):
        if label in chosen:
            continue
        if isinstance(sampler, str) and sampler:
            chosen[label] = sampler
        else:
            try:
                cls, _ = models.get(str(model))
                chosen[label] = cls.default_sampler
            except Exception:  # a plugin model that is not installed here
                chosen[label] = "its default"
    return ", ".join(f"{k}: {v}" for k, v in chosen.items()) or "–"


def claims_frame(verdicts: list[Verdict]) -> Any:
    """``claims.csv``: one row per claim tested, with both sides' values per seed."""
    import pandas as pd

    return pd.DataFrame.from_records([v.record() for v in verdicts], columns=Verdict.COLUMNS)


__all__ = ["ReportResult", "build_report"]
