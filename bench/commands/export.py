"""``aebench export``: the store's metrics as one tidy table (CSV, Parquet or JSON)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

from aebench.core.atomic import atomic_write
from aebench.core.errors import UsageError
from aebench.store.database import (
    STATUSES,
    Store,
    default_store_path,
    non_numeric_note,
    refuse_output_onto_store,
)

FORMATS = ("csv", "parquet", "json")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", default=None, help=f"results store (default: {default_store_path()})"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output format (default: from --out's suffix)",
    )
    parser.add_argument("--out", required=True, help="file to write")
    parser.add_argument("--suite", default=None, help="only runs of this suite")
    parser.add_argument(
        "--status",
        nargs="+",
        choices=STATUSES,
        default=None,
        help="only runs with these statuses (default: all)",
    )
    parser.add_argument(
        "--phase", default=None, help="only this phase, e.g. 'final' (default: every phase)"
    )


def _format(args: argparse.Namespace, out: Path) -> str:
    if args.format:
        return args.format
    suffix = out.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    raise UsageError(f"cannot tell the format of {out}: pass --format {'|'.join(FORMATS)}")


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    fmt = _format(args, out)
    if fmt == "parquet" and not any(
        importlib.util.find_spec(m) is not None for m in ("pyarrow", "fastparquet")
    ):
        raise UsageError("parquet export needs pyarrow: pip install pyarrow (or use --format csv)")
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give a file name")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.parent} does not exist")
    refuse_output_onto_store(args.store, out, "--out")
    with Store.open(args.store, create=False, readonly=True) as store:
        frame = store.metrics_frame(suite=args.suite, status=args.status, phase=args.phase)
        non_numeric = store.count_non_numeric()
        if frame.empty and args.suite is not None:
            suites = sorted({r["suite"] for r in store.runs()})
            if args.suite not in suites:  # a typo: say so, and leave an earlier export as it is
                raise UsageError(
                    f"store {store.path} has no suite {args.suite!r} (its suites: "
                    f"{', '.join(suites) or 'none'})"
                )
    if non_numeric:
        print(f"warning: {non_numeric_note(non_numeric)}", file=sys.stderr)

    # A failed write (full disk) never leaves a half-written file where a good one was.
    def write(tmp_name: str) -> None:
        if fmt == "csv":
            frame.to_csv(tmp_name, index=False)
        elif fmt == "json":
            frame.to_json(tmp_name, orient="records", indent=1)
        else:
            frame.to_parquet(tmp_name, index=False)

    atomic_write(out, write)
    runs = frame["run_id"].nunique()
    print(f"wrote {len(frame)} metric rows from {runs} runs to {out} ({fmt})")
    return 0


export_cmd = SimpleNamespace(
    NAME="export",
    HELP="Write the store's metrics as a tidy table (csv, parquet or json).",
    add_arguments=_add_arguments,
    run=_run,
)
