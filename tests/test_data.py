"""Datasets: the embedded default, torchvision datasets from ../shared/data, image folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aebench import data
from aebench.core.errors import UsageError
from tests.conftest import run_cli


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


def test_binarized_mnist_static_and_dynamic_are_reproducible_from_the_seed(data_dir):
    grey = data.load("mnist", data_dir)
    static = data.load("mnist-binary-static", data_dir)
    dynamic = data.load("mnist-binary", data_dir)
    p_on = float(grey.train_x.float().mean() / 255)
    for split in (static.train_x, static.test_x, dynamic.test_x):
        assert split.dtype == torch.uint8 and set(split.unique().tolist()) == {0, 255}
        assert abs(float((split == 255).float().mean()) - p_on) < 0.005  # Bernoulli(x / 255)
    again = data.load("mnist-binary-static", data_dir)
    assert torch.equal(again.train_x, static.train_x) and torch.equal(again.test_x, static.test_x)
    assert static.train_intensity is None
    assert torch.equal(static.train_images(1, 0), static.train_x)  # static: the same every epoch
    # dynamic: a fresh draw per epoch, fixed by (seed, epoch); test split and codes' images fixed
    assert torch.equal(dynamic.test_x, static.test_x) and torch.equal(dynamic.train_intensity,
                                                                     grey.train_x)  # fmt: skip
    e1, e1_again = dynamic.train_images(1, 0), dynamic.train_images(1, 0)
    e2, other_seed = dynamic.train_images(2, 0), dynamic.train_images(1, 1)
    assert torch.equal(e1, e1_again)
    assert not torch.equal(e1, e2) and not torch.equal(e1, other_seed)
    assert set(e1.unique().tolist()) == {0, 255}
    assert abs(float((e1 == 255).float().mean()) - p_on) < 0.005
    # where the grey level is 0 or 255 every draw agrees; in between they differ
    sure = (grey.train_x == 0) | (grey.train_x == 255)
    assert torch.equal(e1[sure], e2[sure]) and (e1[~sure] != e2[~sure]).any()
    assert dynamic.fingerprint() != static.fingerprint()


def test_the_trainer_redraws_a_dynamic_binarization_every_epoch(data_dir):
    from aebench import models
    from aebench.training.settings import TrainConfig
    from aebench.training.trainer import Trainer
    from tests.conftest import subset

    dynamic = subset(data.load("mnist-binary", data_dir), 512, 128)
    seen = []

    class Recording(Trainer):
        def train_step(self, x):
            seen.append(x.clone())
            return super().train_step(x)

    def two_epochs(seed: int) -> list[torch.Tensor]:
        seen.clear()
        torch.manual_seed(0)
        model = models.create("vae", latent_dim=2)
        config = TrainConfig(epochs=2, batch_size=512, seed=seed, quiet=True)
        Recording(model, dynamic, config, "vae").fit()
        return list(seen)

    first, again, other = two_epochs(0), two_epochs(0), two_epochs(1)
    assert len(first) == 2 and all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert set(first[0].unique().tolist()) == {0.0, 1.0}
    # the same images in another order each epoch, and redrawn: sorted pixel sums differ
    sums = [x.sum((1, 2, 3)).sort().values for x in first]
    assert not torch.equal(sums[0], sums[1])
    assert not torch.equal(first[0], other[0])


def test_a_damaged_torchvision_folder_is_named_as_damaged_not_missing(tmp_path, capsys):
    """MNIST files present but truncated: the message said the data was not there and could
    not be downloaded, and a download was tried over the user's files. Now it names the folder
    as damaged, tries no download and leaves the files as they were."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):  # fmt: skip
        (raw / name).write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    with pytest.raises(UsageError, match=r"MNIST/raw cannot be read .*damaged or incomplete"):
        data.load("mnist", tmp_path)
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before


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


def test_image_folder_keeps_the_native_size_and_pixels_by_default(tmp_path):
    arr = np.random.default_rng(1).integers(0, 255, (12, 20, 20), dtype=np.uint8)
    for i, a in enumerate(arr):
        Image.fromarray(a).save(tmp_path / f"{i:02d}.png")
    ds = data.load("image-folder", tmp_path)
    assert ds.image_shape == (1, 20, 20)
    got = torch.cat([ds.train_x, ds.test_x])[:, 0]
    # every file's exact pixels are there (lossless PNG, no resampling)
    want = {a.tobytes() for a in arr}
    assert {g.numpy().tobytes() for g in got} == want


def test_sixteen_bit_and_alpha_grey_images_stay_grey_and_keep_their_levels(tmp_path):
    """16-bit grey PNGs were read through Pillow's convert("L"), which clips every value above
    255 to white (a blank dataset); grey with alpha was read as three channels. Now both are
    one grey channel, the 16-bit levels scaled by their top 8 bits."""
    rng = np.random.default_rng(2)
    wide = rng.integers(0, 65536, (6, 10, 10), dtype=np.uint16)
    for i, a in enumerate(wide):
        Image.fromarray(a).save(tmp_path / f"w{i}.png")  # mode I;16
    with Image.open(tmp_path / "w0.png") as im:
        assert im.mode in ("I;16", "I")
    ds = data.load("image-folder", tmp_path)
    assert ds.image_shape == (1, 10, 10)
    got = {g.numpy().tobytes() for g in torch.cat([ds.train_x, ds.test_x])[:, 0]}
    assert got == {(a >> 8).astype(np.uint8).tobytes() for a in wide}
    alpha = tmp_path / "alpha"
    alpha.mkdir()
    grey = rng.integers(0, 256, (6, 10, 10), dtype=np.uint8)
    for i, a in enumerate(grey):
        Image.fromarray(np.stack([a, np.full_like(a, 128)], -1), "LA").save(alpha / f"{i}.png")
    ds = data.load("image-folder", alpha)
    assert ds.image_shape == (1, 10, 10)
    got = {g.numpy().tobytes() for g in torch.cat([ds.train_x, ds.test_x])[:, 0]}
    assert got == {a.tobytes() for a in grey}


def test_cli_refuses_an_image_folder_of_mixed_sizes_in_one_line(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / f"a{i}.png")
    Image.fromarray(np.zeros((16, 24), np.uint8)).save(folder / "wide.png")
    out = tmp_path / "run"
    result = run_cli(
        "train", "ae", "--dataset", "image-folder", "--data-dir", str(folder), "--epochs", "1",
        "--out", str(out), "--quiet",
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "mixes image sizes" in lines[0] and "wide.png" in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing written for a refused input


def test_image_folder_with_an_unreadable_image_names_the_file(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UsageError, match=r"broken\.png"):
        data.load("image-folder", tmp_path, image_size=8)


def test_fast_batch_fetch_converts_to_unit_floats(mnist5k):
    x = data.ImageData.batch(mnist5k.train_x, torch.tensor([0, 5]))
    assert x.dtype == torch.float32 and x.shape == (2, 1, 28, 28)
    torch.testing.assert_close(x, mnist5k.train_x[[0, 5]].float() / 255)


def test_mnist_32_is_mnist_padded_with_two_black_pixels(data_dir):
    grey = data.load("mnist", data_dir)
    padded = data.load("mnist-32", data_dir)
    assert padded.train_x.shape == (60000, 1, 32, 32) and padded.test_x.shape == (10000, 1, 32, 32)
    assert torch.equal(padded.train_x[:, :, 2:30, 2:30], grey.train_x)
    assert torch.equal(padded.test_x[:, :, 2:30, 2:30], grey.test_x)
    border = padded.test_x.clone()
    border[:, :, 2:30, 2:30] = 0
    assert int(border.max()) == 0 and torch.equal(padded.test_y, grey.test_y)
