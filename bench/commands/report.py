"""``aebench report``: the comparison report of one suite (Markdown, HTML, CSV, LaTeX, PNGs).

With ``--baseline`` it also compares against another store or suite and exits with code 1 when
any metric regressed, so CI can gate on it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aebench.store.database import default_store_path

NAME = "report"
HELP = "Write a comparison report (md, html, csv, tex, figures) of a suite's runs."


def _number(text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not low <= value < high:
        raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}), got {text!r}")
    return value


def alpha_arg(text: str) -> float:
    """argparse type of a significance level (``--alpha`` here and in ``aebench gate``)."""
    return _number(text, 1e-12, 1.0)


def tolerance_arg(text: str) -> float:
    """argparse type of a relative tolerance (``--tolerance`` here and in ``aebench gate``)."""
    return _number(text, 0.0, 1e6)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The report's options (see ``aebench report --help``)."""
    parser.add_argument(
        "--store", default=None, help=f"results store (default: {default_store_path()})"
    )
    parser.add_argument(
        "--suite", default=None, help="suite to report (default: the newest with finished runs)"
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="STORE_OR_SUITE",
        help="compare against another store file, which must hold finished runs of the same "
        "suite (else refused, exit code 2), or against a suite in this store; exit code 1 if "
        "any metric regressed",
    )
    parser.add_argument("--out", required=True, help="folder to write the report into")
    parser.add_argument(
        "--alpha", type=alpha_arg, default=0.05, help="significance level (default 0.05)"
    )
    parser.add_argument(
        "--tolerance",
        type=tolerance_arg,
        default=0.05,
        help="smallest relative change that counts (default 0.05 = 5%%)",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=None,
        help="metrics the baseline comparison tests (default: the headline metrics)",
    )
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    parser.add_argument(
        "--published",
        default=None,
        metavar="FILE",
        help="published values to set beside a protocol suite's runs (default: the shipped "
        "bench/published/values.toml)",
    )
    parser.add_argument(
        "--reference",
        default=None,
        metavar="REPORT",
        help="another report's folder (or its table.csv): add a section on whether this suite "
        "ranks the models as that one does (nox -s bench uses reports/mnist)",
    )


def suite_context(suite: str | None) -> tuple[str | None, tuple, Any]:
    """The store's suite name, the suite's own ``[[claims]]`` and its ``[protocol]`` when
    ``suite`` names a loadable suite (a shipped one, or a TOML file: its ``name``); else
    ``suite`` as given, with no claims and no protocol."""
    from aebench.core.errors import UsageError
    from aebench.experiments.suite import load_suite

    if suite is None:
        return None, (), None
    try:
        loaded = load_suite(suite)
    except UsageError:
        if suite.endswith(".toml"):
            raise  # a suite file that does not load is the user's to fix
        return suite, (), None  # a suite known only by its name in the store
    return loaded.name, loaded.claims, loaded.protocol


def run(args: argparse.Namespace) -> int:
    """Build the report; print what was written and any regressions; 1 if any regressed."""
    from aebench.report import build_report
    from aebench.report.baseline import regression_line
    from aebench.store.database import non_numeric_note

    suite, claims, protocol = suite_context(args.suite)
    result = build_report(
        args.store,
        args.out,
        suite=suite,
        claims=claims,
        protocol=protocol,
        published=args.published,
        reference=args.reference,
        baseline=args.baseline,
        figures=not args.no_figures,
        alpha=args.alpha,
        tolerance=args.tolerance,
        metrics=args.metrics,
    )
    print(
        f"report of suite {result.data.suite} ({len(result.data.runs)} runs) "
        f"written to {result.out}"
    )
    if result.data.non_numeric:
        print(f"warning: {non_numeric_note(result.data.non_numeric)}", file=sys.stderr)
    for v in result.verdicts:
        print(f"claim: {v.line()}")
    for a in result.agreements:
        swaps = "" if not a.swaps else f" ({len(a.swaps)} swapped pair(s), see the report)"
        print(f"ranking vs {result.reference}: {a.metric} {a.verdict}{swaps}")
    for fig in result.figures:
        if fig.problem:
            print(f"warning: {fig.path.name} not drawn: {fig.problem}")
    if result.comparison is not None:
        regs = result.comparison.regressions
        for _, r in regs.iterrows():
            print(regression_line(r, result.comparison.keys))
        if regs.empty:
            print(f"no regression against {result.comparison.baseline_name}")
    return result.exit_code
