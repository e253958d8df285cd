"""``aebench run SUITE``: run a benchmark suite into the results store (resumable)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import TYPE_CHECKING

from aebench.core.errors import UsageError

if TYPE_CHECKING:
    from aebench.experiments.suite import Suite

#: run_suite's exit code when the user interrupted it (no claims are tested then)
INTERRUPTED = 130

NAME = "run"
HELP = "Run a suite (a shipped name or a TOML path) into the results store; resumes."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "suite", help="a shipped suite (bench/suites: smoke, quick, zoo-fast, zoo, ...) or a .toml"
    )
    p.add_argument("--store", default=None, help="results store (default: runs/aebench.sqlite)")
    p.add_argument("--executor", default="local", help="local (default) or ray")
    p.add_argument("--ray-address", default=None, help="address of a running Ray cluster")
    p.add_argument("--jobs", type=int, default=1, help="parallel runs for the local executor")
    p.add_argument(
        "--threads-per-run",
        type=int,
        default=None,
        help="ray: CPUs each run reserves and uses as torch threads (default 1)",
    )
    p.add_argument(
        "--gpus-per-run",
        type=float,
        default=None,
        help="ray, CUDA suites: GPUs each run reserves; a fraction packs small nets (default 1)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=float,
        default=None,
        metavar="MINUTES",
        help="ray: each run ships its checkpoint to the driver this often, so a run whose node "
        "dies resumes elsewhere from it (default 5; 0 = every epoch)",
    )
    p.add_argument("--data-dir", default=None, help="override the suite's data folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    # the layers below load torch, the runner and the store: a command's own imports, so that
    # `aebench --help` and a bad argument answer at once
    from aebench.experiments.runner import run_suite
    from aebench.experiments.suite import load_suite

    given = {
        "--threads-per-run": ("threads_per_run", args.threads_per_run),
        "--gpus-per-run": ("gpus_per_run", args.gpus_per_run),
        "--checkpoint-every": ("checkpoint_every_s", _seconds(args.checkpoint_every)),
    }
    ray_options = {key: value for key, value in given.values() if value is not None}
    ray_only = [flag for flag, (_, value) in given.items() if value is not None]
    ray_only += ["--ray-address"] if args.ray_address is not None else []
    if ray_only and args.executor != "ray":
        raise UsageError(
            f"{ray_only[0]} is for --executor ray (the local executor gives each of --jobs runs "
            "an equal share of the cores)"
        )
    suite = load_suite(args.suite)
    if args.data_dir is not None:
        suite = dataclasses.replace(suite, data_dir=args.data_dir)
    code = run_suite(
        suite,
        args.store,
        executor=args.executor,
        jobs=args.jobs,
        ray_address=args.ray_address,
        quiet=args.quiet,
        suite_arg=args.suite,
        ray_options=ray_options,
    )
    if code != INTERRUPTED:
        print_claims(args.store, suite)
    return code


def print_claims(store_path: str | os.PathLike[str] | None, suite: Suite) -> None:
    """The claims' verdicts on every finished run of the suite (this run's and earlier)."""
    from aebench.experiments.claims import BUILTIN, check
    from aebench.report import collect  # pandas

    try:
        data = collect.load(store_path, suite.name)
    except UsageError:
        return  # no finished run to test anything on
    verdicts = check(data.runs, (*BUILTIN, *suite.claims), [k for k in data.keys if k != "label"])
    if verdicts:
        print(f"claims ({len(data.runs)} finished runs; Welch's t-test over seeds, alpha 0.05):")
        for v in verdicts:
            print(f"  {v.line()}")


def _seconds(minutes: float | None) -> float | None:
    return None if minutes is None else minutes * 60.0
