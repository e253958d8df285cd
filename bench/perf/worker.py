"""A benchmark worker: one process that builds cases and times rounds of them on request.

The speed gate (:mod:`aebench.perf.abtest`) starts one worker per version of the code (the base
commit's tree and the working tree, each first on ``sys.path``) and asks them for rounds in
turn, so only one of them runs at any moment. The protocol is one JSON object per line: a
request on stdin, its answer on the original stdout; anything the code under test prints goes
to stderr instead, so it cannot corrupt an answer.

Requests: ``{"op": "build", "case": NAME}``, ``{"op": "calls", "case": NAME, "target": S}`` (how
many calls make a round of about S seconds), ``{"op": "time", "case": NAME, "calls": K}``
(seconds per call over K calls), ``{"op": "list"}`` (the cases this tree has),
``{"op": "count", "case": NAME}`` (FLOPs, operations, host
reads of one call) and ``{"op": "quit"}``. Each answer is ``{"ok": true, ...}`` or
``{"ok": false, "error": ONE_LINE}``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any


def _time(call: Callable[[], Any], calls: int) -> float:
    """Seconds per call over ``calls`` back-to-back calls (after a collection, so one round's
    garbage is not charged to the next)."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def _calls_for(call: Callable[[], Any], target: float) -> int:
    """How many calls take about ``target`` seconds (at least one)."""
    once = _time(call, 1)
    return max(1, min(10_000, round(target / max(once, 1e-9))))


class Worker:
    """The built cases of this process, by name."""

    def __init__(self) -> None:
        self.calls: dict[str, Callable[[], Any]] = {}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        from aebench.perf import counters
        from aebench.perf.cases import CASES

        op, name = request.get("op"), str(request.get("case", ""))
        if op == "list":
            cases = [
                {"name": n, "counted": c.counted, "units": c.units, "gated": c.gated}
                for n, c in CASES.items()
            ]
            return {"ok": True, "cases": cases}
        if op == "build":
            start = time.perf_counter()
            self.calls[name] = CASES.get(name).build()
            self.calls[name]()  # the first call pays one-time costs (oneDNN primitives, caches)
            return {"ok": True, "seconds": time.perf_counter() - start}
        call = self.calls.get(name)
        if call is None:
            return {"ok": False, "error": f"case {name!r} was not built"}
        if op == "calls":
            return {"ok": True, "calls": _calls_for(call, float(request["target"]))}
        if op == "time":
            return {"ok": True, "seconds": _time(call, int(request["calls"]))}
        if op == "count":
            return {"ok": True, "counts": counters.count(call)}
        return {"ok": False, "error": f"unknown request {op!r}"}


def serve(threads: int) -> None:
    """Answer requests from stdin until ``quit`` or end of input."""
    import torch

    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # the code under test prints to stderr, never into the protocol
    torch.set_num_threads(threads)
    worker = Worker()
    protocol.write(json.dumps({"ok": True, "threads": torch.get_num_threads()}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "quit":
            break
        try:
            answer = worker.handle(request)
        except Exception as err:  # the code under test failed: report it, keep serving
            text = " ".join(str(err).split()) or type(err).__name__
            answer = {"ok": False, "error": f"{type(err).__name__}: {text}"[:500]}
        protocol.write(json.dumps(answer) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, required=True)
    serve(parser.parse_args(argv).threads)


if __name__ == "__main__":
    main()
