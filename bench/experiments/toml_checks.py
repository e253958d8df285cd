"""The leaves of a TOML file's validation: tables, integers, numbers, names, choices, arrays.
Every problem is one :class:`~aebench.core.errors.UsageError` line naming the file and the key."""

from __future__ import annotations

import re
from typing import Any

from aebench.core.errors import UsageError
from aebench.core.values import describe, is_int, is_real

#: a suite's, a label's or a run's name
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


class TomlChecker:
    """Checks of parsed TOML values; each returns the value or raises one :class:`UsageError`
    line naming the file (``source``) and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> UsageError:
        return UsageError(f"{self.source}: key {key!r}: {message}")

    # -- leaves ------------------------------------------------------------------------------
    def table(self, value: Any, key: str, allowed: tuple[str, ...] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {describe(value)}")
        for k in value:
            if not isinstance(k, str):
                raise self.fail(key, f"keys must be strings, got {describe(k)}")
            if allowed is not None and k not in allowed:
                full = f"{key}.{k}" if key else k
                raise UsageError(
                    f"{self.source}: unknown key {full!r}; allowed here: {', '.join(allowed)}"
                )
        return value

    def int_(self, value: Any, key: str, low: int = 1, high: int = 2**63 - 1) -> int:
        if not is_int(value):
            raise self.fail(key, f"must be an integer, got {describe(value)}")
        if not low <= value <= high:
            bound = f">= {low}" if high == 2**63 - 1 else f"between {low} and {high}"
            raise self.fail(key, f"must be {bound}, got {value}")
        return int(value)

    def real(self, value: Any, key: str, positive: bool = True) -> float:
        if not is_real(value):
            raise self.fail(key, f"must be a finite number, got {describe(value)}")
        if positive and value <= 0:
            raise self.fail(key, f"must be > 0, got {value}")
        return float(value)

    def name(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not NAME_RE.match(value):
            raise self.fail(
                key,
                "must be a name of letters, digits and ._+- (at most 64, starting with a letter "
                f"or digit), got {describe(value)}",
            )
        return value

    def choice(self, value: Any, key: str, choices: list[str] | tuple[str, ...], what: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {describe(value)}")
        if value not in choices:
            raise self.fail(key, f"unknown {what} {value!r}; choose from: {', '.join(choices)}")
        return value

    def list_(self, value: Any, key: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(key, f"must be an array, got {describe(value)}")
        if not value:
            raise self.fail(key, "must not be empty")
        return value

    def unique(self, items: list[Any], key: str) -> tuple[Any, ...]:
        seen: set[Any] = set()
        for item in items:
            if item in seen:
                raise self.fail(key, f"{item!r} is listed twice")
            seen.add(item)
        return tuple(items)
