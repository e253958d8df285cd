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


def build_parser() -> argparse.ArgumentParser:
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
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _plugin_files(argv: Sequence[str] | None) -> list[str]:
    """The ``--plugin FILE`` values among the arguments (before the full parser is built)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    return known.plugin


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # plugins first: the parser's choices (models, metric families) must include theirs
        use_plugins(_plugin_files(argv))
        args = build_parser().parse_args(argv)
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
