"""Datasets: the embedded default, torchvision datasets from ../shared/data, image folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench import data
from bench.errors import UsageError


def test_mnist_5k_is_a_fixed_stratified_split(mnist5k):
    assert mnist5k.train_x.shape == (4000, 1, 28, 28) and mnist5k.test_x.shape == (1000, 1, 28, 28)
    assert mnist5k.train_x.dtype == torch.uint8
    assert torch.equal(mnist5k.train_y.bincount(), torch.full((10,), 400))
    assert torch.equal(mnist5k.test_y.bincount(), torch.full((10,), 100))
    again = data.load("mnist-5k")
    assert torch.equal(again.train_x, mnist5k.train_x) and torch.equal(again.test_y, mnist5k.test_y)
    # no image is in both splits
    train = {bytes(x.numpy()) for x in mnist5k.train_x}
    assert not any(bytes(x.numpy()) in train for x in mnist5k.test_x)


def test_mnist_loads_from_the_shared_folder(data_dir):
    mnist = data.load("mnist", data_dir)
    assert mnist.train_x.shape == (60000, 1, 28, 28) and mnist.test_x.shape == (10000, 1, 28, 28)
    assert mnist.train_y.shape == (60000,) and int(mnist.train_y.max()) == 9


def test_fashion_mnist_loads_through_the_environment_variable(data_dir, monkeypatch):
    monkeypatch.setenv("AEBENCH_DATA_DIR", str(data_dir))
    fashion = data.load("fashion-mnist")
    assert fashion.train_x.shape == (60000, 1, 28, 28) and fashion.test_x.shape[0] == 10000


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(UsageError, match=r"unknown dataset 'svhn'.*mnist-5k"):
        data.load("svhn")


def test_image_folder_loads_resizes_and_labels_by_subfolder(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (tmp_path / label).mkdir()
        for i in range(10):
            arr = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / label / f"{i}.png")
    ds = data.load("image-folder", tmp_path, image_size=16)
    assert ds.train_x.shape == (18, 3, 16, 16) and ds.test_x.shape == (2, 3, 16, 16)
    assert sorted(torch.cat([ds.train_y, ds.test_y]).bincount().tolist()) == [10, 10]


def test_image_folder_with_an_unreadable_image_names_the_file(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UsageError, match=r"broken\.png"):
        data.load("image-folder", tmp_path, image_size=8)


def test_fast_batch_fetch_converts_to_unit_floats(mnist5k):
    x = data.ImageData.batch(mnist5k.train_x, torch.tensor([0, 5]))
    assert x.dtype == torch.float32 and x.shape == (2, 1, 28, 28)
    torch.testing.assert_close(x, mnist5k.train_x[[0, 5]].float() / 255)
