"""Image grids written as PNG (torchvision's ``save_image``), shared by the CLI and reports."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import save_image


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """Save images in [0, 1] of shape (N, C, H, W) as one PNG grid, ``nrow`` per row."""
    save_image(images.detach().float().clamp(0, 1).cpu(), str(path), nrow=nrow, padding=2)


def pair_rows(originals: torch.Tensor, reconstructions: torch.Tensor, per_row: int) -> torch.Tensor:
    """Interleave rows: ``per_row`` originals, then their reconstructions, and so on."""
    n = originals.shape[0] - originals.shape[0] % per_row
    o = originals[:n].reshape(-1, per_row, *originals.shape[1:])
    r = reconstructions[:n].reshape(-1, per_row, *reconstructions.shape[1:])
    return torch.stack([o, r], 1).reshape(-1, *originals.shape[1:])
