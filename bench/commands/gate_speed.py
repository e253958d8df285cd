"""``aebench gate speed``: the working tree against a base commit, interleaved (bench/perf).

Exit 1 when a case is *slower* (its median slowdown's interval lies wholly above the threshold,
or it reads more values back to the host, or computes more FLOPs); *noisy* cases are reported
and do not fail. Exit 2 for bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path


def add_speed_arguments(sub: argparse._SubParsersAction) -> None:
    from aebench.perf.stats import THRESHOLD

    p = sub.add_parser(
        "speed",
        help="the working tree against --base REV, timed in interleaved rounds in this job",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--base", default="HEAD", help="the commit to compare against (default HEAD)")
    p.add_argument(
        "--case",
        action="append",
        default=None,
        help="only this case (repeatable; default: the gated cases, docs/ci-gates.md)",
    )
    p.add_argument("--pairs", type=int, default=15, help="interleaved round pairs (default 15)")
    p.add_argument(
        "--max-pairs", type=int, default=45, help="pairs at most for a noisy case (default 45)"
    )
    p.add_argument(
        "--round-seconds", type=float, default=0.25, help="length of a round (default 0.25)"
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=THRESHOLD,
        help=f"fail when the whole interval is above 1 + this (default {THRESHOLD})",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads per worker (default: all cores)"
    )
    p.add_argument("--json", default=None, metavar="PATH", help="write every ratio and verdict")


def _settings(args: argparse.Namespace) -> object:
    import math

    from aebench.core.errors import UsageError
    from aebench.perf.abtest import GateSettings

    if not 8 <= args.pairs <= 1000:
        raise UsageError(f"--pairs must be between 8 and 1000, got {args.pairs}")
    if not args.pairs <= args.max_pairs <= 10_000:
        raise UsageError(f"--max-pairs must be between --pairs and 10000, got {args.max_pairs}")
    if not (math.isfinite(args.round_seconds) and 0.001 <= args.round_seconds <= 60):
        raise UsageError(f"--round-seconds must be between 0.001 and 60, got {args.round_seconds}")
    if not (math.isfinite(args.threshold) and 0 < args.threshold < 10):
        raise UsageError(f"--threshold must be between 0 and 10, got {args.threshold}")
    return GateSettings(args.pairs, args.max_pairs, args.round_seconds, args.threshold)


def run_speed(args: argparse.Namespace) -> int:
    from aebench.core.errors import UsageError
    from aebench.perf import abtest

    settings = _settings(args)
    threads = args.threads if args.threads is not None else (os.cpu_count() or 1)
    if not 1 <= threads <= 1024:
        raise UsageError(f"--threads must be between 1 and 1024, got {threads}")
    head = abtest.repo_root(Path.cwd())
    trees = head / "runs" / "regress" / "trees"
    base = abtest.materialise(head, args.base, trees)
    worktree = abtest.snapshot_worktree(head, trees)
    start = time.perf_counter()
    print(f"speed gate: working tree {head} against {args.base} ({base.name[:12]}), "
          f"{threads} threads")  # fmt: skip
    results = abtest.run_gate(base, worktree, args.case, settings, threads)  # type: ignore[arg-type]
    unknown = [r.case for r in results if r.status == "missing"]
    if unknown:  # a named case the working tree lacks: a typo, and a gate that tested nothing
        raise UsageError(f"--case {unknown[0]}: the working tree has no such case")
    slower = [r.case for r in results if r.status == "slower"]
    noisy = [r.case for r in results if r.status == "noisy"]
    failed = [r.case for r in results if r.status == "failed"]
    took = abtest.elapsed_since(start)
    if args.json:
        meta = {"base": args.base, "base_sha": base.name, "threads": threads, "took": took,
                "settings": dataclasses.asdict(settings)}  # type: ignore[call-overload]  # fmt: skip
        abtest.write_results(Path(args.json), results, meta)
    print(f"speed gate against {args.base}: {len(slower)} slower, {len(noisy)} noisy, "
          f"{len(failed)} failed of {len(results)} cases in {took}"
          + (f"; slower: {', '.join(slower)}" if slower else ""))  # fmt: skip
    if not args.case and _ungated_note():
        print(_ungated_note())
    return 1 if slower or failed else 0


def _ungated_note() -> str:
    """One line naming how many cases the default gate leaves out, and how to add them."""
    from aebench.perf.cases import CASES

    left_out = [name for name, case in CASES.items() if not case.gated]
    return (
        f"not gated by default: {len(left_out)} cases (the zoo's train steps, e.g. "
        f"{left_out[0]}); add any with --case NAME"
        if left_out
        else ""
    )
