"""``aebench fid REAL FAKE_DIR``: FID/KID/P&R/density/coverage between two image sets."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "fid"
HELP = "FID, KID, precision/recall, density/coverage between image folders or a dataset split."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("real", metavar="REAL_DIR_OR_DATASET", help="image folder or dataset name")
    p.add_argument("fake", metavar="FAKE_DIR", help="image folder")
    p.add_argument("--split", choices=("test", "train"), default="test", help="dataset split")
    p.add_argument(
        "--backbone",
        default=None,
        help="domain (needs a dataset name as REAL) or inception; default: domain for a dataset, "
        "inception for a folder",
    )
    p.add_argument("--n", type=int, default=None, help="use at most this many images per set")
    p.add_argument("--data-dir", default=None, help="dataset files (default: $AEBENCH_DATA_DIR)")
    p.add_argument("--cache-dir", default=None, help="feature-net cache")
    p.add_argument("--inception-weights", default=None, help="torch-fidelity-layout weights file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="PATH", help="also write the scores as JSON")


def run(args: argparse.Namespace) -> int:
    import time

    from aebench import STARTED, data
    from aebench.core.errors import UsageError
    from aebench.metrics import features, format_table
    from aebench.metrics.compare import compare, folder_shape, read_images

    imported = time.perf_counter()

    if args.n is not None and args.n < 7:
        raise UsageError(f"--n must be at least 7, got {args.n}")
    if not 0 <= args.seed < 2**32:  # as train's and a suite's seeds; torch takes no more
        raise UsageError(f"--seed must be an integer from 0 to 2**32 - 1, got {args.seed}")
    dataset = None
    if Path(args.real).is_dir():
        backbone = args.backbone or "inception"
        if backbone == "domain":
            raise UsageError("the domain backbone needs a dataset name as REAL, not a folder")
        shape = folder_shape(args.real)
        real = read_images(args.real, shape, args.n)
    elif args.real in data.available():
        backbone = args.backbone or "domain"
        dataset = data.load(args.real, args.data_dir)
        real = dataset.test_x if args.split == "test" else dataset.train_x
        real = real[: args.n] if args.n else real
        shape = dataset.image_shape
    else:
        raise UsageError(
            f"{args.real} is neither an image folder nor a dataset ({', '.join(data.available())})"
        )
    fake = read_images(args.fake, shape, args.n)
    read = time.perf_counter()
    net = features.build(
        backbone,
        dataset,
        cache=args.cache_dir,
        **({"weights": args.inception_weights} if backbone == "inception" else {}),
    )
    seconds = {
        "start_up": imported - STARTED + time.perf_counter() - read,
        "reading": read - imported,
    }
    scores = compare(real, fake, net, seed=args.seed, seconds=seconds)
    info = getattr(net, "info", {})
    acc = info.get("test_accuracy")
    acc_text = f", test accuracy {acc:.3f}" if isinstance(acc, float) else ""
    print(f"{len(real)} real vs {len(fake)} generated images, backbone {backbone}{acc_text}")
    print(format_table(scores))
    print(_timing_line(seconds, len(real) + len(fake)))
    if args.json:
        from aebench.store.run_folder import write_json_atomic

        write_json_atomic(Path(args.json), {**scores, "backbone": backbone, "seconds": seconds})
    return 0


def _timing_line(seconds: dict[str, float], images: int) -> str:
    """Where the time went, start-up apart from the network's own rate (issue 24)."""
    rate = images / max(seconds["features"], 1e-9)
    return (
        f"time: start-up {seconds['start_up']:.1f} s (imports, building the network), reading "
        f"{seconds['reading']:.1f} s, features {seconds['features']:.1f} s ({images} images, "
        f"{rate:.1f} images/s), scores {seconds['scores']:.1f} s"
    )
