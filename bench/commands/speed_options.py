"""The harness's speed switches as command-line flags, shared by ``train`` and ``speed``."""

from __future__ import annotations

import argparse
from typing import Any


def tristate(value: str) -> bool | None:
    """``auto`` → None (the trainer decides), ``on``/``off`` → True/False."""
    return {"auto": None, "on": True, "off": False}[value]


def speed_option_values(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed switches as ``TrainConfig``/``SpeedOptions`` keyword arguments."""
    return {
        "precision": args.precision,
        "channels_last": tristate(args.channels_last),
        "native_thin_deconv": tristate(args.native_thin_deconv),
        "compile": args.compile,
    }


def add_speed_option_arguments(p: argparse.ArgumentParser) -> None:
    """``--precision``, ``--channels-last``, ``--native-thin-deconv`` and ``--compile`` (see
    ``TrainConfig``)."""
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: forward and loss under bfloat16 autocast (default: fp32)",
    )
    p.add_argument(
        "--channels-last",
        choices=("auto", "on", "off"),
        default="auto",
        help="NHWC memory format for model and batches (default auto: on for conv nets on CUDA)",
    )
    p.add_argument(
        "--native-thin-deconv",
        choices=("auto", "on", "off"),
        default="auto",
        help="forward of transposed convs with <= 4 output channels on PyTorch's own kernel, "
        "not oneDNN (default auto: on for CPU)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model's loss")
