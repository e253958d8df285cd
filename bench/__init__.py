"""aebench: datasets, the training harness, metrics, runners, store and CLI."""

from __future__ import annotations

import time

__version__ = "0.1.0"

#: when the package was first imported: a command's start-up (imports, weights) counts from here
#: (the interpreter's own start, tens of milliseconds, comes before it)
STARTED = time.perf_counter()
