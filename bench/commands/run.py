"""``aebench run SUITE``: run a benchmark suite into the results store (resumable)."""

from __future__ import annotations

import argparse

NAME = "run"
HELP = "Run a suite (a shipped name or a TOML path) into the results store; resumes."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", help="suite name (smoke, quick, mnist, fashion, cifar10) or a .toml")
    p.add_argument("--store", default=None, help="results store (default: runs/aebench.sqlite)")
    p.add_argument("--executor", default="local", help="local (default) or ray")
    p.add_argument("--ray-address", default=None, help="address of a running Ray cluster")
    p.add_argument("--jobs", type=int, default=1, help="parallel runs for the local executor")
    p.add_argument("--data-dir", default=None, help="override the suite's data folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from aebench.runner import run_suite
    from aebench.suite import load_suite

    suite = load_suite(args.suite)
    if args.data_dir is not None:
        suite = dataclasses.replace(suite, data_dir=args.data_dir)
    return run_suite(
        suite,
        args.store,
        executor=args.executor,
        jobs=args.jobs,
        ray_address=args.ray_address,
        quiet=args.quiet,
        suite_arg=args.suite,
    )
