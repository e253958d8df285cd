"""The CLI's sub-commands, in the order ``aebench --help`` lists them."""

from __future__ import annotations

from bench.commands import listing, run, train

COMMANDS = [listing.models_cmd, listing.datasets_cmd, train, run]
