"""The in-memory dataset value and the dataset-name registry."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from aebench.core.errors import UsageError
from aebench.core.registry import Registry

DATA_DIR_ENV = "AEBENCH_DATA_DIR"


@dataclass
class ImageData:
    """A dataset as four tensors: uint8 images (N, C, H, W) and int64 labels, per split.

    Images stay uint8 until a batch is taken (``batch``): 4× less memory than float32 and the
    conversion is fused into the fetch. Labels are -1 where a dataset has none.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    #: dynamic binarization: the grey-level training images (uint8 intensities = Bernoulli
    #: probabilities x 255) that :meth:`train_images` resamples every epoch; ``train_x`` then
    #: holds one fixed binarization, for everything that is not training (codes, features)
    train_intensity: torch.Tensor | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def to(self, device: torch.device | str) -> ImageData:
        """The same data on ``device`` (a no-op when it is already there)."""
        device = torch.device(device)
        if self.train_x.device == device:
            return self
        return ImageData(
            self.name,
            *(t.to(device) for t in (self.train_x, self.train_y, self.test_x, self.test_y)),
            None if self.train_intensity is None else self.train_intensity.to(device),
        )

    def train_images(self, epoch: int, seed: int) -> torch.Tensor:
        """The training images of ``epoch``: ``train_x``, or for dynamic binarization a fresh
        Bernoulli draw from ``train_intensity`` seeded by (seed, epoch) — one tensor op on the
        data's device, the same draw again after a resume."""
        if self.train_intensity is None:
            return self.train_x
        return binarize(self.train_intensity, seed * 1_000_003 + epoch)

    @staticmethod
    def batch(images: torch.Tensor, index: torch.Tensor | slice) -> torch.Tensor:
        """Float images in [0, 1] for ``index`` of a uint8 tensor."""
        return images[index].float().div_(255.0)

    def fingerprint(self) -> str:
        """A short content hash, used to key caches (e.g. the domain feature network)."""
        h = hashlib.sha256(self.name.encode())
        extra = () if self.train_intensity is None else (self.train_intensity,)
        for t in (self.train_x, self.train_y, *extra):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


def binarize(intensity: torch.Tensor, seed: int) -> torch.Tensor:
    """uint8 images in {0, 255}: each pixel on with probability intensity / 255 (Bernoulli),
    drawn from a generator seeded with ``seed`` on the images' device."""
    gen = torch.Generator(device=intensity.device).manual_seed(seed)
    p = intensity.float().div_(255.0)
    return torch.bernoulli(p, generator=gen).to(torch.uint8).mul_(255)


Loader = Callable[..., ImageData]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: the loader ``fn(data_dir, **options) -> ImageData`` and a line
    that ``aebench datasets`` prints."""

    loader: Loader
    description: str = ""
    #: the folder it reads *is* the data (a user's own images), so another folder is other
    #: data and another run; for a dataset that a folder merely caches (MNIST), it is not
    folder_is_data: bool = False


#: dataset name → loader; plugins add theirs through the entry-point group ``aebench.datasets``
DATASETS: Registry[DatasetEntry] = Registry("dataset", "aebench.datasets")


def register_dataset(
    name: str, description: str = "", folder_is_data: bool = False
) -> Callable[[Loader], Loader]:
    """Decorator: make a loader ``fn(data_dir, **options) -> ImageData`` available as
    ``load(name)``; ``folder_is_data`` when the folder it reads is the data itself (its path
    then enters a run's hash, :attr:`DatasetEntry.folder_is_data`)."""

    def wrap(fn: Loader) -> Loader:
        DATASETS.register(name, DatasetEntry(fn, description, folder_is_data))
        return fn

    return wrap


def available() -> list[str]:
    return DATASETS.names()


def describe(name: str) -> str:
    return DATASETS.get(name).description


def folder_is_data(name: str) -> bool:
    """Whether dataset ``name`` reads a folder that is its data (False if not registered)."""
    return name in DATASETS and DATASETS.get(name).folder_is_data


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """``data_dir`` if given, else ``$AEBENCH_DATA_DIR``, else None (the loaders then use
    ``~/.cache/aebench/data``)."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else None


def load(name: str, data_dir: str | os.PathLike[str] | None = None, **options: Any) -> ImageData:
    """Load dataset ``name`` into memory; a :class:`UsageError` for unknown names or data.

    ``options`` go to the loader (``image_size`` for ``image-folder``). A plugin's loader that
    fails in any other way (a damaged or foreign file it reads) is one line naming the dataset:
    its traceback runs through the user's code, not aebench's.
    """
    loader = DATASETS.get(name).loader
    if getattr(loader, "__module__", "").startswith("aebench."):
        return loader(resolve_data_dir(data_dir), **options)
    try:
        return loader(resolve_data_dir(data_dir), **options)
    except UsageError:
        raise
    except Exception as err:  # the plugin's own code
        detail = (str(err).strip().splitlines() or [""])[0]
        raise UsageError(
            f"dataset {name!r} could not be loaded: {type(err).__name__}"
            f"{': ' + detail if detail else ''}"
        ) from None
