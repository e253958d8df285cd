"""Two image sets compared by themselves (``aebench fid``): folders or a dataset split.

Users ask for FID between two folders of images more than for anything else; this gives them
FID, KID, precision/recall and density/coverage from one feature extraction per set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.data.files import image_files, open_image
from bench.errors import UsageError
from bench.metrics import features
from bench.metrics.generation import generation_metrics


def folder_shape(folder: str | os.PathLike[str]) -> tuple[int, int, int]:
    """(C, H, W) of a folder's first image: 1 channel if it is grey, else 3."""
    files = image_files(Path(folder))
    if not files:
        raise UsageError(f"image folder {folder} holds no images")
    im = open_image(files[0])
    return (1 if im.mode in ("L", "1", "I;16") else 3, im.size[1], im.size[0])


def read_images(
    folder: str | os.PathLike[str], shape: tuple[int, int, int], limit: int | None = None
) -> torch.Tensor:
    """Every image under ``folder`` (sorted paths) as uint8 (N, C, H, W), converted to ``shape``:
    grey for C = 1, RGB for C = 3, bilinearly resized to H × W."""
    from PIL import Image

    root = Path(folder)
    files = image_files(root)
    if limit is not None:
        files = files[:limit]
    if len(files) < 2:
        raise UsageError(f"image folder {root} holds fewer than 2 images")
    c, h, w = shape
    mode = "L" if c == 1 else "RGB"
    arrays = []
    for path in files:
        im = open_image(path).convert(mode)
        if im.size != (w, h):
            im = im.resize((w, h), Image.BILINEAR)
        arrays.append(np.asarray(im, dtype=np.uint8))
    x = torch.from_numpy(np.stack(arrays))
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def compare(
    real: torch.Tensor,
    fake: torch.Tensor,
    net: torch.nn.Module,
    k: int = 5,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """FID, KID, P&R and density/coverage of uint8 image sets ``real`` and ``fake`` in
    ``net``'s feature space."""
    real_f = features.extract(net, real)
    fake_f = features.extract(net, fake)
    if real_f.shape[0] <= k or fake_f.shape[0] <= k:
        raise UsageError(f"need more than k={k} images in each set")
    return generation_metrics(
        real_f, fake_f, k=k, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed
    )
