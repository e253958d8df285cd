"""Image files a user hands in (``image-folder``, ``aebench fid``), read in one guarded place.

Reading is two passes. First every file's **header** is read (``PIL.Image.open`` parses the
header only; size and mode are known before any pixel is decoded), and the whole set is held to
:data:`MAX_DECODED_BYTES` before anything large is allocated: a folder of PNGs that are small
on disk (a flat colour compresses about a thousandfold) can still need tens of gigabytes once
decoded. Then the images are decoded **one at a time** and written channels-first straight
into one preallocated (N, C, H, W) uint8 array, so memory peaks at the final array plus a single
decoded image (with its conversions), never at every image held at full size, and never at a
second copy of the set.

Pillow refuses images over twice its ``MAX_IMAGE_PIXELS`` (a decompression bomb: a small PNG
that would inflate to gigabytes) with an exception of its own, and reports unreadable files in
several ways; every one of them becomes a one-line :class:`~aebench.core.errors.UsageError` naming
the file. Between one and two times that limit Pillow only warns
(``DecompressionBombWarning``); such an image is legitimate if the set fits the budget above, so
the warning is silenced rather than printed above the one-line error or the results.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from aebench.core.errors import UsageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
#: Pillow modes that stay one grey channel (anything else is read as RGB): bilevel, 8-bit grey,
#: grey with alpha (the alpha is dropped) and 16/32-bit grey (scaled to 8 bits, :func:`_as_8bit`)
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N"})
#: the most memory one image set may need decoded: the final uint8 array (N × C × H × W bytes)
#: plus the largest single image while Pillow decodes and converts it. Far above any set this
#: benchmark trains on (MNIST's 70,000 images are 55 MB), well below what exhausts a machine.
MAX_DECODED_BYTES = 4 * 2**30


def image_files(root: Path) -> list[Path]:
    """Every image file under ``root`` (by suffix), sorted; a one-line error if no folder."""
    if not root.is_dir():
        raise UsageError(f"image folder {root} does not exist or is not a directory")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Any]:
    """``PIL.Image.open(path)`` (header parsed, pixels not yet decoded) with every failure a
    one-line :class:`UsageError` naming the file, and the bomb warning silenced."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except Image.DecompressionBombError:
        raise UsageError(
            f"image {path} is too large to decode safely (over {2 * Image.MAX_IMAGE_PIXELS:,} "
            "pixels: a decompression bomb?)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"cannot read image {path}: {reason}") from None


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says: its mode and (width, height); nothing decoded."""

    path: Path
    mode: str
    size: tuple[int, int]

    @property
    def grey(self) -> bool:
        return self.mode in GREY_MODES


def read_header(path: Path) -> ImageHeader:
    """The header of the image at ``path`` (a one-line error if it is no readable image)."""
    with _opened(path) as im:
        return ImageHeader(path, im.mode, (int(im.size[0]), int(im.size[1])))


def _pillow_bytes_per_pixel(mode: str) -> int:
    """Bytes per pixel in Pillow's own storage (multi-band images take 4)."""
    return 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4


def _peak_bytes(header: ImageHeader, mode: str, size: tuple[int, int]) -> int:
    """The most memory decoding one image takes besides the final array, at its worst step:
    the file's pixels beside their conversion to ``mode``; the conversion beside its resize to
    ``size``; the resized image beside its pixels as a NumPy array (one byte per channel)."""
    w, h = header.size
    ours = _pillow_bytes_per_pixel(mode)
    decode = w * h * (_pillow_bytes_per_pixel(header.mode) + ours)
    resize = (w * h + size[0] * size[1]) * ours if header.size != size else 0
    as_array = size[0] * size[1] * (ours + (1 if mode == "L" else 3))
    return max(decode, resize, as_array)


def check_decoded_size(
    headers: Sequence[ImageHeader], mode: str, size: tuple[int, int], what: str
) -> None:
    """Refuse, in one line, a set whose decoding would need more than
    :data:`MAX_DECODED_BYTES`: ``len(headers)`` images of ``size`` (width, height) in ``mode``
    as uint8, plus the most one image takes on the way (:func:`_peak_bytes`)."""
    if not headers:
        return
    channels = 1 if mode == "L" else 3
    final = len(headers) * channels * size[0] * size[1]
    peaks = [_peak_bytes(h, mode, size) for h in headers]
    worst = max(range(len(headers)), key=peaks.__getitem__)
    biggest, one = headers[worst], peaks[worst]
    w, h = biggest.size
    if final + one > MAX_DECODED_BYTES:
        raise UsageError(
            f"{what}: {len(headers)} image(s) of {size[0]}x{size[1]} ({mode}, the largest file "
            f"{biggest.path.name} {w}x{h}) would need {(final + one) / 2**30:.1f} GiB decoded; "
            f"the limit is {MAX_DECODED_BYTES / 2**30:g} GiB: use fewer or smaller images"
        )


def read_image_tensor(
    headers: Sequence[ImageHeader], mode: str, size: tuple[int, int], what: str
) -> torch.Tensor:
    """The images of ``headers`` as one uint8 tensor (N, C, H, W): converted to ``mode``
    (``"L"`` or ``"RGB"``) and bilinearly resized to ``size`` (width, height) where they differ.

    The set is checked against :data:`MAX_DECODED_BYTES` first (:func:`check_decoded_size`);
    then each image is decoded, converted, resized and written channels-first into its place
    in the preallocated (N, C, H, W) array before the next is opened: no second full-size copy
    (a permute of the whole set would be one) is ever made.
    """
    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be L or RGB, got {mode!r}")
    check_decoded_size(headers, mode, size, what)
    w, h = size
    out = np.empty((len(headers), 1 if mode == "L" else 3, h, w), np.uint8)
    for i, header in enumerate(headers):
        with _opened(header.path) as im:
            im.load()
            converted = _as_8bit(im).convert(mode)
        if converted.size != size:
            converted = converted.resize(size, Image.BILINEAR)
        pixels = np.asarray(converted, dtype=np.uint8)
        del converted
        out[i] = pixels[None] if mode == "L" else pixels.transpose(2, 0, 1)
        del pixels
    return torch.from_numpy(out)


def _as_8bit(im: Image.Image) -> Image.Image:
    """``im`` itself, or for 16- and 32-bit grey (``I;16*``, ``I``: a 16-bit PNG or TIFF) its
    top 8 bits of 16 as 8-bit grey: Pillow's own conversion clips every value above 255 to
    white, so such a folder would be read as blank images."""
    if im.mode != "I" and not im.mode.startswith("I;16"):
        return im
    wide = np.asarray(im).astype(np.int64)
    return Image.fromarray(np.clip(wide >> 8, 0, 255).astype(np.uint8), "L")


def read_folder_images(
    files: Sequence[Path], folder: Path, image_size: int | None, order: Sequence[int] | None = None
) -> torch.Tensor:
    """An ``image-folder`` dataset's images as uint8 (N, C, H, W): grey (1 channel) when every
    file is grey, else RGB; resized to ``image_size``² when given, else all of one size (a
    folder of mixed sizes is refused in one line naming two of them). ``order`` (indices into
    ``files``) is the order of the rows: a caller that splits the set into contiguous slices
    then needs no copy of it."""
    headers = [read_header(p) for p in files]
    mode = "L" if all(h.grey for h in headers) else "RGB"
    if image_size is None:
        sizes = {h.size: h.path for h in headers}
        if len(sizes) > 1:
            (s1, p1), (s2, p2) = list(sizes.items())[:2]
            raise UsageError(
                f"image folder {folder} mixes image sizes ({p1.name} is {s1[0]}x{s1[1]}, "
                f"{p2.name} is {s2[0]}x{s2[1]}); resize them to one size first"
            )
        size = headers[0].size
    else:
        size = (image_size, image_size)
    ordered = headers if order is None else [headers[i] for i in order]
    return read_image_tensor(ordered, mode, size, f"image folder {folder}")
