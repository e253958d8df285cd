"""The speed benchmark cases: one registry, used by pytest-benchmark and by the speed gate.

A case is a name and a ``build()`` that prepares its inputs once and returns the call to time.
Each call goes through the code a user's command runs, not a copy of it:

* ``train-step[MODEL-ARCH]`` — :meth:`aebench.training.trainer.Trainer.train_step` on a batch of
64, as ``aebench train`` and every suite run take it;
* ``epoch[vae-mlp]`` — :meth:`~aebench.training.trainer.Trainer.train_epoch` over MNIST-5k's 4,000
images;
* ``evaluate[vae-mlp]`` — :func:`aebench.metrics.evaluate` (reconstruction and latent families),
  as ``aebench eval`` runs it;
* ``encode-decode[ARCH]`` — a 256-image round trip in inference mode;
* ``domain-features`` / ``inception-features`` — :func:`aebench.metrics.compare.compare`'s
  feature path (:func:`aebench.metrics.features.extract` on a backbone from
  :func:`~aebench.metrics.features.build`), which ``aebench fid`` and the generation metrics use;
* ``generation-metrics`` — FID, KID, precision/recall and density/coverage on 2,000 features;
* ``calibration-matmul`` — an fp32 1024² matmul: the machine's matmul rate, against which the
  informational trend divides every other time.

Inputs are seeded, so both sides of an A/B comparison time the same work.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from aebench import data, models
from aebench.core.registry import Registry
from aebench.data import ImageData
from aebench.metrics import evaluate, features, generation
from aebench.metrics.options import MetricOptions
from aebench.training.probe import step_on_copy
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer

#: the models whose train step the speed gate compares by default (the harness's paths: one
#: optimizer, a KL, a posterior, three ordered phases)
MODELS = ("ae", "vae", "beta-vae", "vae-gan")
#: the rest of the zoo: benchmarked and in the trend baseline; gated on request (``--case``),
#: which keeps a default gate within its measured time and false-alarm rate (docs/ci-gates.md)
ZOO_MODELS = ("wae-mmd", "rae-l2", "rae-gp", "iwae", "beta-tcvae", "vamp", "info-vae",
              "aae", "factor-vae", "wae-gan", "vq-vae", "two-stage-vae")  # fmt: skip
ARCHS = ("mlp", "conv")
BATCH = 64


@dataclass(frozen=True)
class Case:
    """A benchmark: ``build()`` returns the zero-argument call that is timed.

    ``units`` is how many images one call processes (for a rate); ``counted`` says whether
    the gate also counts its FLOPs, operations and host syncs (every case but the ones whose
    count would take longer than the timing itself); ``gated`` whether ``aebench gate speed``
    compares it when no ``--case`` is named."""

    name: str
    build: Callable[[], Callable[[], Any]]
    units: int = 1
    counted: bool = True
    gated: bool = True


CASES: Registry[Case] = Registry("speed benchmark case")


def register(case: Case) -> Case:
    CASES.register(case.name, case)
    return case


@functools.cache
def mnist5k() -> Any:
    return data.load("mnist-5k")


@functools.cache
def small_split() -> Any:
    """1,024 training and 256 test images of MNIST-5k: enough for a step, cheap to hold."""
    d = mnist5k()
    return ImageData("bench", d.train_x[:1024], d.train_y[:1024], d.test_x[:256], d.test_y[:256])


def _trainer(name: str, arch: str, data: Any, **train: Any) -> Any:
    torch.manual_seed(0)
    model = models.create(name, arch=arch)
    config = TrainConfig(batch_size=BATCH, quiet=True, device="cpu", **train)
    return Trainer(model, data, config, name)


def _train_step(name: str, arch: str) -> Callable[[], Any]:
    data = small_split()
    trainer = _trainer(name, arch, data)
    images = BATCH * trainer.model.batches_per_step  # FactorVAE's step reads two batches
    batch = ImageData.batch(data.train_x, torch.arange(images))
    return lambda: trainer.train_step(batch)


for _model in MODELS + ZOO_MODELS:
    for _arch in ARCHS:
        if not models.supports_arch(_model, _arch):  # VQ-VAE: conv only
            continue
        register(
            Case(
                f"train-step[{_model}-{_arch}]",
                functools.partial(_train_step, _model, _arch),
                units=BATCH * models.get(_model)[0].batches_per_step,
                gated=_model in MODELS,
            )
        )


def _epoch() -> Callable[[], Any]:
    trainer = _trainer("vae", "mlp", mnist5k(), epochs=1)
    return lambda: trainer.train_epoch(1)


register(Case("epoch[vae-mlp]", _epoch, units=4000, counted=False))


def _evaluate() -> Callable[[], Any]:
    torch.manual_seed(0)
    model = models.create("vae", arch="mlp")
    options = MetricOptions(families=("reconstruction", "latent"), iw_k=50, iw_n=200, seed=0)
    return lambda: evaluate(model, small_split(), options, train_step_factory=step_on_copy)


register(Case("evaluate[vae-mlp]", _evaluate, units=256, counted=False))


def _encode_decode(arch: str) -> Callable[[], Any]:
    torch.manual_seed(0)
    model = models.create("vae", arch=arch).eval()
    x = ImageData.batch(small_split().train_x, slice(0, 256))

    @torch.inference_mode()
    def roundtrip() -> torch.Tensor:
        return model.decode(model.encode(x))

    return roundtrip


for _arch in ARCHS:
    register(Case(f"encode-decode[{_arch}]", functools.partial(_encode_decode, _arch), units=256))


def _features(backbone: str, n: int) -> Callable[[], Any]:
    """The feature path of ``aebench fid`` and the generation metrics. The domain network is
    built untrained: its speed does not depend on its weights, and training it (the one-time,
    cached cost of a first evaluation) is not what this case times."""
    if backbone == "domain":
        net = features.DomainNet(1, 10).eval().requires_grad_(False)
    else:
        net = features.build(backbone, None)
    images = mnist5k().test_x[:n]
    return lambda: features.extract(net, images)


register(Case("domain-features", functools.partial(_features, "domain", 1000), units=1000))
register(Case("inception-features", functools.partial(_features, "inception", 16), units=16))


def _generation_metrics() -> Callable[[], Any]:
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(2000, 128, generator=gen)
    fake = torch.randn(2000, 128, generator=gen) + 0.1
    return lambda: generation.generation_metrics(real, fake, kid_subsets=20)


register(Case("generation-metrics", _generation_metrics, units=2000, counted=False))


def _matmul() -> Callable[[], Any]:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(1024, 1024, generator=gen)
    b = torch.randn(1024, 1024, generator=gen)
    return lambda: torch.mm(a, b)


CALIBRATION = register(Case("calibration-matmul", _matmul, units=1))


def case_names() -> list[str]:
    """Every registered case, in registration order."""
    return [name for name, _ in CASES.items()]


__all__ = ["CALIBRATION", "CASES", "Case", "case_names", "register"]
