"""``aebench models``, ``aebench datasets`` and ``aebench protocols``: the registered names,
one per line (protocols with their source and how many published values the shipped file
holds for each)."""

from __future__ import annotations

import argparse
from types import SimpleNamespace


def _print_models(args: argparse.Namespace) -> int:
    from aebench import models

    print("\n".join(models.available()))
    return 0


def _print_datasets(args: argparse.Namespace) -> int:
    from aebench import data

    print("\n".join(data.available()))
    return 0


def _print_protocols(args: argparse.Namespace) -> int:
    from collections import Counter

    from aebench.experiments.protocols import PROTOCOLS
    from aebench.experiments.published import load_published

    counts = Counter(v.protocol for v in load_published())
    for name in PROTOCOLS.names():
        p = PROTOCOLS.get(name)
        print(f"{name}\t{p.source}; {counts[name]} published values")
    return 0


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


models_cmd = SimpleNamespace(
    NAME="models",
    HELP="List the registered models (plugins included).",
    add_arguments=_no_arguments,
    run=_print_models,
)
protocols_cmd = SimpleNamespace(
    NAME="protocols",
    HELP="List the published protocols a suite can follow ([protocol] name = ...).",
    add_arguments=_no_arguments,
    run=_print_protocols,
)
datasets_cmd = SimpleNamespace(
    NAME="datasets",
    HELP="List the dataset names.",
    add_arguments=_no_arguments,
    run=_print_datasets,
)
