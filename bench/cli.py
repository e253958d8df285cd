"""The ``aebench`` command line: a thin argparse layer over the library.

Each sub-command lives in ``bench/commands/<name>.py`` and exposes ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. A :class:`~aebench.core.errors.UsageError`
anywhere becomes one line on stderr and exit code 2, and so does an ``OSError`` (a full disk, a
missing permission: the machine's state, not a bug); nothing else is caught here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aebench import __version__
from aebench.commands import COMMANDS
from aebench.core.errors import UsageError
from aebench.core.plugins import use_plugins

#: what ``aebench --help`` says aebench is
DESCRIPTION = "Train, measure and compare generative autoencoders on the same data, nets and budget"


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line (its default prints usage + message)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the options of ``command`` only (every sub-command stays listed by
    name): a command never pays for another's imports, and ``aebench --help`` for none.
    Some options' choices come from registries that load torch."""
    parser = _Parser(prog="aebench", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"aebench {__version__}")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE",
        help="a Python file whose models, metric families, datasets or samplers to register "
        "(repeatable; docs/extending.md)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in COMMANDS:
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        if command == module.NAME:
            module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _pre_parse(argv: Sequence[str] | None) -> tuple[list[str], str | None]:
    """The ``--plugin FILE`` values and the sub-command's name (or None), read before the
    full parser is built."""
    args = sys.argv[1:] if argv is None else list(argv)
    pre = _Parser(add_help=False)
    pre.add_argument("--plugin", action="append", default=[])
    pre.add_argument("command", nargs="?")
    try:
        known, _ = pre.parse_known_args(args)
    except UsageError:  # a --plugin with no FILE: none is loaded, and the full parser says so
        return [], next((a for a in args if a in {m.NAME for m in COMMANDS}), None)
    return known.plugin, known.command


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # plugins first: the parser's choices (models, metric families) must include theirs
        plugins, command = _pre_parse(argv)
        use_plugins(plugins)
        args = build_parser(command).parse_args(argv)
        return int(args._run(args) or 0)
    except UsageError as err:
        print(f"aebench: error: {err}", file=sys.stderr)
        return UsageError.exit_code
    except KeyboardInterrupt:
        print("aebench: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # the environment, not a bug: full disk, permissions, missing path
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(f"aebench: error: {err.strerror or err}{where}", file=sys.stderr)
        return UsageError.exit_code


if __name__ == "__main__":
    sys.exit(main())
