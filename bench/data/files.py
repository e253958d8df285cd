"""Image files a user hands in (``image-folder``, ``aebench fid``), read in one guarded place.

Pillow refuses images over twice its ``MAX_IMAGE_PIXELS`` (a decompression bomb: a small PNG
that would inflate to gigabytes) with an exception of its own, and reports unreadable files in
several ways; every one of them becomes a one-line :class:`~bench.errors.UsageError` naming
the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.errors import UsageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def image_files(root: Path) -> list[Path]:
    """Every image file under ``root`` (by suffix), sorted; a one-line error if no folder."""
    if not root.is_dir():
        raise UsageError(f"image folder {root} does not exist or is not a directory")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def open_image(path: Path) -> Any:
    """The decoded image at ``path`` (a loaded ``PIL.Image``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except Image.DecompressionBombError:
        raise UsageError(
            f"image {path} is too large to decode safely (over {2 * Image.MAX_IMAGE_PIXELS:,} "
            "pixels: a decompression bomb?)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise UsageError(f"cannot read image {path}: {err}") from None
