"""The one exception type for mistakes a user can make.

The CLI turns a :class:`UsageError` into a single line on stderr and exit code 2.
Anything else that escapes is a bug and is allowed to show a traceback.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user: unknown names, out-of-range values, unreadable paths."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # Keep the message on one line: the CLI prints it verbatim.
        super().__init__(" ".join(str(message).split()))
