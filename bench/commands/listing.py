"""``aebench models`` and ``aebench datasets``: the registered names, one per line."""

from __future__ import annotations

import argparse
from types import SimpleNamespace


def _print_models(args: argparse.Namespace) -> int:
    import models

    print("\n".join(models.available()))
    return 0


def _print_datasets(args: argparse.Namespace) -> int:
    from bench import data

    print("\n".join(data.available()))
    return 0


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


models_cmd = SimpleNamespace(
    NAME="models",
    HELP="List the registered models (plugins included).",
    add_arguments=_no_arguments,
    run=_print_models,
)
datasets_cmd = SimpleNamespace(
    NAME="datasets",
    HELP="List the dataset names.",
    add_arguments=_no_arguments,
    run=_print_datasets,
)
