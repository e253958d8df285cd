"""SIGTERM and SIGINT as a request to stop, so a training run can checkpoint first.

While a :class:`StopSignals` is active, either signal is recorded instead of ending the process;
the trainer checks :attr:`StopSignals.signum` before every batch, writes a checkpoint and raises
:class:`~aebench.training.trainer.TrainingInterrupted`. Python lets only the main thread install
handlers, so elsewhere (a Ray worker's thread, say) the signals keep their usual effect.
"""

from __future__ import annotations

import signal
import threading
from types import TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """A context manager that records SIGTERM/SIGINT in :attr:`signum` while ``enabled``."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _record(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def watch(self, enabled: bool) -> StopSignals:
        """Install the handlers (when ``enabled`` and on the main thread); use as ``with``."""
        self.signum = None
        if enabled and threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._record) for sig in STOP_SIGNALS}
        return self

    def __enter__(self) -> StopSignals:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
