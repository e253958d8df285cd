"""``aebench runs``: list the runs in a results store as a table."""

from __future__ import annotations

import argparse
import datetime as _dt
from types import SimpleNamespace
from typing import Any

from aebench.core.text_table import text_table
from aebench.store.database import STATUSES, Store, default_store_path


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", default=None, help=f"results store (default: {default_store_path()})"
    )
    parser.add_argument("--suite", default=None, help="only runs of this suite")
    parser.add_argument(
        "--status", nargs="+", choices=STATUSES, default=None, help="only runs with these statuses"
    )


def _duration(row: dict[str, Any]) -> str:
    try:
        start = _dt.datetime.fromisoformat(row["started_at"])
        end = _dt.datetime.fromisoformat(row["ended_at"])
    except (TypeError, ValueError):
        return ""
    seconds = int((end - start).total_seconds())
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: id, suite, run, status, started, duration, hash, error."""
    header = ("id", "suite", "run", "status", "started", "took", "hash", "error")
    body = []
    for r in rows:
        error = (r.get("error") or "").replace("\n", " ")
        body.append(
            (
                str(r["id"]),
                r["suite"],
                r["run_name"],
                r["status"],
                (r.get("started_at") or "")[:19].replace("T", " "),
                _duration(r),
                r["config_hash"][:12],
                error if len(error) <= 60 else error[:57] + "...",
            )
        )
    return text_table(header, body, rule=True)


def _run(args: argparse.Namespace) -> int:
    with Store.open(args.store, create=False, readonly=True) as store:
        rows = store.runs(suite=args.suite, status=args.status)
    if not rows:
        print("no runs match")
        return 0
    print(format_table(rows))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print(f"\n{len(rows)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0


runs_cmd = SimpleNamespace(
    NAME="runs",
    HELP="List the runs in a results store (status, timing, errors).",
    add_arguments=_add_arguments,
    run=_run,
)
