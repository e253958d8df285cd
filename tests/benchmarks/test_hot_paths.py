"""pytest-benchmark guards for the hot paths.

``nox -s regress`` times these and fails on a median regression beyond the threshold in the
noxfile; the ``tests`` session runs each once with ``--benchmark-disable`` so CI checks they
work without timing anything. Weights are untrained: speed does not depend on them.
"""

from __future__ import annotations

import pytest
import torch

import models
from bench.data import ImageData
from bench.metrics import features, generation
from bench.trainer import TrainConfig, Trainer
from tests.conftest import subset

BATCH = 64


@pytest.fixture(scope="module")
def small(mnist5k):
    return subset(mnist5k, 1024, 256, "bench")


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("name", ["ae", "vae", "beta-vae", "vae-gan"])
def test_train_step(benchmark, name, arch, small):
    torch.manual_seed(0)
    model = models.create(name, arch=arch)
    trainer = Trainer(model, small, TrainConfig(batch_size=BATCH, quiet=True), name)
    idx = torch.arange(BATCH)

    def step():
        return trainer.train_step(ImageData.batch(small.train_x, idx))

    terms = benchmark(step)
    assert torch.isfinite(terms["loss"])


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_encode_decode_batch_256(benchmark, arch, small):
    model = models.create("vae", arch=arch).eval()
    x = ImageData.batch(small.train_x, slice(0, 256))

    @torch.inference_mode()
    def roundtrip():
        return model.decode(model.encode(x))

    assert benchmark(roundtrip).shape == x.shape


def test_domain_feature_extraction_1000_images(benchmark, mnist5k):
    net = features.DomainNet(1, 10).eval()
    images = mnist5k.test_x[:1000]
    feats = benchmark(lambda: features.extract(net, images))
    assert feats.shape == (1000, features.DomainNet.num_features)


def test_fid_kid_precision_recall_on_2000_features(benchmark):
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(2000, 128, generator=gen)
    fake = torch.randn(2000, 128, generator=gen) + 0.1
    scores = benchmark(lambda: generation.generation_metrics(real, fake, kid_subsets=20))
    assert scores["fid"] > 0


def test_one_epoch_on_mnist_5k(benchmark, mnist5k):
    def epoch():
        torch.manual_seed(0)
        model = models.create("vae", arch="mlp")
        trainer = Trainer(model, mnist5k, TrainConfig(epochs=1, quiet=True), "vae")
        return trainer.train_epoch(1)

    assert benchmark.pedantic(epoch, rounds=3, iterations=1)["loss"] > 0


def test_inception_features_32_images(benchmark, tmp_path_factory):
    """The FID Inception on 28×28 grey images (resized to 299² inside): the rate that decides
    how long a standard 10k + 10k-image FID takes on a CPU."""
    net = features.build("inception", None, cache=tmp_path_factory.mktemp("inception"))
    images = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    feats = benchmark.pedantic(lambda: features.extract(net, images), rounds=3, iterations=1)
    assert feats.shape == (32, 2048)
