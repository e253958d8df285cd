"""``aebench speed``: training/inference throughput, latency, memory and FLOPs per model."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from aebench.commands.speed_options import add_speed_option_arguments, speed_option_values
from aebench.core.errors import UsageError

NAME = "speed"
HELP = "Measure throughput (harness vs. a hand-written loop), latency, memory and FLOPs."


def _csv(kind: type) -> object:
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v) for v in text.split(",") if v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list: {text!r}") from None

    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", type=_csv(str), default=None, help="comma list (default: all)")
    p.add_argument("--archs", type=_csv(str), default=("mlp", "conv"))
    p.add_argument("--batch-sizes", type=_csv(int), default=(64, 256))
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps per timed repeat")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_speed_option_arguments(p)


def run(args: argparse.Namespace) -> int:
    from aebench import models
    from aebench.models.backbones import ARCHS
    from aebench.perf.throughput import SpeedOptions, format_table, run_speed
    from aebench.training.settings import TrainConfig

    if args.models is not None and not args.models:
        raise UsageError("--models names no model; leave it out to measure every model")
    names = args.models or tuple(models.available())
    for name in names:
        models.get(name)
    for arch in args.archs:
        if arch not in ARCHS:
            raise UsageError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHS)}")
    if any(b < 1 for b in args.batch_sizes) or args.steps < 1 or args.repeats < 1:
        raise UsageError("batch sizes, --steps and --repeats must be >= 1")
    if max(args.batch_sizes) > 1_000_000:  # as the metric options' batch sizes
        raise UsageError(f"batch sizes must be at most 1,000,000, got {max(args.batch_sizes):,}")
    opts = SpeedOptions(
        models=tuple(names),
        archs=tuple(args.archs),
        batch_sizes=tuple(args.batch_sizes),
        steps=args.steps,
        repeats=args.repeats,
        train=TrainConfig(device=args.device, **speed_option_values(args)),
    )
    try:
        results = run_speed(opts, progress=not args.json)
    except RuntimeError as err:  # torch's allocators: CPU and CUDA (OutOfMemoryError)
        from aebench.core.devices import is_allocation_failure

        if not is_allocation_failure(err):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UsageError(
            f"a case did not fit in memory ({first}); give smaller --batch-sizes"
        ) from None
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(format_table(results))
    return 0
