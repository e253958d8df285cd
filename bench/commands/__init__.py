"""The CLI's sub-commands, in the order ``aebench --help`` lists them."""

from __future__ import annotations

from aebench.commands import eval, export, fid, gate, listing, report, run, runs, speed, train

COMMANDS = [
    listing.models_cmd,
    listing.datasets_cmd,
    listing.protocols_cmd,
    train,
    run,
    runs.runs_cmd,
    export.export_cmd,
    report,
    speed,
    eval,
    fid,
    gate,
]
