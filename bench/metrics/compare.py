"""Two image sets compared by themselves (``aebench fid``): folders or a dataset split.

Users ask for FID between two folders of images more than for anything else; this gives them
FID, KID, precision/recall and density/coverage from one feature extraction per set.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from aebench.core.errors import UsageError
from aebench.data.files import image_files, read_header, read_image_tensor
from aebench.metrics import features
from aebench.metrics.generation import generation_metrics


def folder_shape(folder: str | os.PathLike[str]) -> tuple[int, int, int]:
    """(C, H, W) of a folder's first image: 1 channel if it is grey, else 3."""
    files = image_files(Path(folder))
    if not files:
        raise UsageError(f"image folder {folder} holds no images")
    header = read_header(files[0])  # the header only: nothing is decoded here
    return (1 if header.grey else 3, header.size[1], header.size[0])


def read_images(
    folder: str | os.PathLike[str], shape: tuple[int, int, int], limit: int | None = None
) -> torch.Tensor:
    """Every image under ``folder`` (sorted paths) as uint8 (N, C, H, W), converted to ``shape``:
    grey for C = 1, RGB for C = 3, bilinearly resized to H × W; the set is held to
    :data:`aebench.data.files.MAX_DECODED_BYTES` before anything is decoded."""
    root = Path(folder)
    files = image_files(root)
    if limit is not None:
        files = files[:limit]
    if len(files) < 2:
        raise UsageError(f"image folder {root} holds fewer than 2 images")
    c, h, w = shape
    headers = [read_header(p) for p in files]
    return read_image_tensor(headers, "L" if c == 1 else "RGB", (w, h), f"image folder {root}")


def compare(
    real: torch.Tensor,
    fake: torch.Tensor,
    net: torch.nn.Module,
    k: int = 5,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    seconds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """FID, KID, P&R and density/coverage of uint8 image sets ``real`` and ``fake`` in
    ``net``'s feature space; ``seconds``, if given, receives the time of the feature
    extraction (``features``) and of the scores (``scores``)."""
    start = time.perf_counter()
    real_f = features.extract(net, real)
    fake_f = features.extract(net, fake)
    extracted = time.perf_counter()
    if real_f.shape[0] <= k or fake_f.shape[0] <= k:
        raise UsageError(f"need more than k={k} images in each set")
    scores = generation_metrics(
        real_f, fake_f, k=k, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed
    )
    if seconds is not None:
        seconds.update(features=extracted - start, scores=time.perf_counter() - extracted)
    return scores
