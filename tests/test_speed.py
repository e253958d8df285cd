"""`aebench speed` output and the harness's fast data path."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from aebench import models
from aebench.data import ImageData
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer
from tests.conftest import run_cli, subset


def test_speed_json_parses_and_ratio_is_computed_from_both_loops():
    # vae-gan too: its multi-optimizer step must also run under the FLOP counter
    result = run_cli(
        "speed",
        "--models",
        "vae,vae-gan",
        "--archs",
        "mlp",
        "--batch-sizes",
        "32",
        "--steps",
        "2",
        "--repeats",
        "2",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["model"] for r in rows] == ["vae", "vae-gan"]
    for row in rows:
        assert row["batch_size"] == 32
        assert row["train_samples_per_s"] > 0 and row["reference_samples_per_s"] > 0
        ratio = row["train_samples_per_s"] / row["reference_samples_per_s"]
        assert abs(row["ratio"] - ratio) < 1e-9
        assert row["flops_per_sample"] > 0 and row["matmul_gflops"] > 0
        assert row["threads"] >= 1 and row["device"] == "cpu"
    # three networks' forward and backward against two: the GAN step must cost more
    assert rows[1]["flops_per_sample"] > rows[0]["flops_per_sample"]


def test_fast_data_path_yields_the_same_batches_as_a_dataloader(mnist5k):
    """The harness's batches equal a DataLoader's over the same seeded permutation."""
    seed, epoch, bs = 3, 2, 100
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(len(mnist5k.train_x), generator=gen)
    ours = [ImageData.batch(mnist5k.train_x, perm[i : i + bs]) for i in range(0, len(perm), bs)]
    floats = TensorDataset(mnist5k.train_x.float() / 255)
    loader = DataLoader(floats, batch_size=bs, sampler=perm.tolist())
    theirs = [b[0] for b in loader]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def test_trainer_uses_that_permutation(mnist5k, monkeypatch):
    seen = []
    model = models.create("ae", latent_dim=2)
    data = subset(mnist5k, 300, 50, "t")
    trainer = Trainer(model, data, TrainConfig(epochs=1, batch_size=100, seed=3, quiet=True))
    original = trainer.train_step
    monkeypatch.setattr(trainer, "train_step", lambda x: (seen.append(x.clone()), original(x))[1])
    trainer.fit()
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(3 * 100_003 + 1))
    assert len(seen) == 3
    for i, x in enumerate(seen):
        assert torch.equal(x, data.train_x[perm[i * 100 : (i + 1) * 100]].float() / 255)


def test_custom_encoder_and_decoder_modules_train_through_the_harness(mnist5k):
    from torch import nn

    enc = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.Tanh(), nn.Linear(64, 2 * 3))
    dec = nn.Sequential(nn.Linear(3, 784), nn.Unflatten(1, (1, 28, 28)))
    model = models.create("vae", encoder=enc, decoder=dec, latent_dim=3)
    assert model.encoder is enc and model.decoder is dec
    data = subset(mnist5k, 1000, 200, "t")
    history = Trainer(model, data, TrainConfig(epochs=3, quiet=True)).fit()
    assert history[-1]["test"]["loss"] < history[0]["test"]["loss"]


def _two_epochs(data: ImageData, hook=None, **speed_options) -> tuple[Trainer, float]:
    torch.manual_seed(0)
    model = models.create("vae", arch="conv", latent_dim=8)
    if hook is not None:  # on the encoder's second conv (32 -> 64 channels)
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        convs[1].register_forward_hook(hook)
    config = TrainConfig(epochs=2, batch_size=128, seed=0, quiet=True, **speed_options)
    trainer = Trainer(model, data, config)
    history = trainer.fit()
    return trainer, history[-1]["test"]["loss"]


@pytest.fixture(scope="module")
def small(mnist5k) -> ImageData:
    return subset(mnist5k, 1500, 300, "t")


@pytest.fixture(scope="module")
def plain_loss(small) -> float:
    return _two_epochs(small, channels_last=False, native_thin_deconv=False)[1]


def test_channels_last_takes_effect_and_reaches_the_same_loss(small, plain_loss):
    layouts = []

    def hook(module, inputs, output):
        layouts.append((module.training, output.is_contiguous(memory_format=torch.channels_last)))

    trainer, loss = _two_epochs(small, hook=hook, channels_last=True)
    assert trainer.channels_last
    assert all(nhwc for training, nhwc in layouts if training)  # every training step: NHWC
    assert loss == pytest.approx(plain_loss, rel=1e-3)
    # handed back in the usual layout: computes what the same weights loaded from disk compute
    assert all(p.is_contiguous() for p in trainer.model.parameters())
    # the default (auto): NHWC only for conv nets on CUDA, where cuDNN wants it
    mlp = Trainer(models.create("vae", latent_dim=2), small, TrainConfig(quiet=True))
    assert not mlp.channels_last  # nothing to gain without conv layers
    conv = models.create("vae", arch="conv", latent_dim=2)
    assert not Trainer(conv, small, TrainConfig(quiet=True, device="cpu")).channels_last


def _ops_of_one_step(trainer: Trainer, data: ImageData) -> set[str]:
    from torch.profiler import profile

    with profile() as prof:
        trainer.train_step(ImageData.batch(data.train_x, slice(0, 64)))
    return {e.name for e in prof.events()}


def test_native_thin_deconv_takes_effect_and_reaches_the_same_loss(small, plain_loss):
    # the conv decoder ends in a 32 -> 1 channel transposed conv: the default (auto, on a CPU)
    # runs its forward on PyTorch's own kernel and everything else on oneDNN
    torch.manual_seed(0)
    model = models.create("vae", arch="conv", latent_dim=8)
    trainer = Trainer(model, small, TrainConfig(quiet=True, device="cpu"))
    assert trainer.native_thin_deconv
    ops = _ops_of_one_step(trainer, small)
    assert "aten::slow_conv_transpose2d" in ops and "aten::mkldnn_convolution" in ops
    assert torch.backends.mkldnn.enabled  # switched back after the layer
    other = models.create("vae", arch="conv", latent_dim=8)
    plain = Trainer(other, small, TrainConfig(quiet=True, native_thin_deconv=False))
    assert "aten::slow_conv_transpose2d" not in _ops_of_one_step(plain, small)

    trainer, loss = _two_epochs(small, channels_last=False, native_thin_deconv=True)
    assert loss == pytest.approx(plain_loss, rel=1e-3)
    # a training-speed detail: the trained model is handed back without the hooks
    deconvs = [m for m in trainer.model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert deconvs and not any(m._forward_hooks or m._forward_pre_hooks for m in deconvs)


def test_thin_deconv_switch_is_restored_when_the_forward_raises():
    from aebench.training.thin_deconv import route_thin_deconvs

    layer = torch.nn.ConvTranspose2d(8, 1, 4, 2, 1)
    wide = torch.nn.ConvTranspose2d(8, 16, 4, 2, 1)
    assert len(route_thin_deconvs(layer)) == 2 and route_thin_deconvs(wide) == []
    with pytest.raises(RuntimeError):
        layer(torch.randn(2, 3, 5, 5))  # wrong channel count
    assert torch.backends.mkldnn.enabled


def test_bf16_autocast_takes_effect_and_reaches_the_same_loss(small, plain_loss):
    dtypes = []
    torch.manual_seed(0)
    model = models.create("vae", arch="conv", latent_dim=8)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    config = TrainConfig(
        epochs=2, batch_size=128, seed=0, quiet=True, precision="bf16", channels_last=False
    )
    history = Trainer(model, small, config).fit()
    assert torch.bfloat16 in dtypes  # the training forward ran in bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert history[-1]["test"]["loss"] == pytest.approx(plain_loss, rel=0.03)


@pytest.mark.slow
def test_compiled_loss_reaches_the_same_loss_and_keeps_state_dict_keys(small, plain_loss):
    trainer, loss = _two_epochs(small, compile=True, channels_last=False)
    assert trainer.switches.loss is not trainer.model.loss
    assert not any(k.startswith("_orig_mod") for k in trainer.model.state_dict())
    # inductor fuses and reorders float math, so two epochs drift apart by ~1 %, not bit-exact
    assert loss == pytest.approx(plain_loss, rel=0.03)


def test_unknown_precision_is_a_usage_error():
    from aebench.core.errors import UsageError

    with pytest.raises(UsageError, match="precision"):
        TrainConfig(precision="fp8").validate()


def test_speed_switches_are_a_context_manager_that_undoes_itself():
    """Inside: NHWC weights and routed thin deconvolutions; outside: the model exactly as a
    fresh load would build it, also when the block raises."""
    from aebench import models
    from aebench.training.speed_switches import SpeedSwitches

    model = models.create("vae", arch="conv", latent_dim=4)
    cfg = TrainConfig(channels_last=True, native_thin_deconv=True, quiet=True)
    deconvs = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with (
        pytest.raises(RuntimeError, match="inside"),
        SpeedSwitches(model, cfg, torch.device("cpu")),
    ):
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert any(m._forward_pre_hooks for m in deconvs)
        raise RuntimeError("inside")
    assert conv.weight.is_contiguous() and not any(m._forward_pre_hooks for m in deconvs)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--batch-sizes", "100000000000"], "at most 1,000,000"),  # was an allocator traceback
        (["--models", ""], "names no model"),  # measured every model
    ],
)
def test_speed_refuses_what_it_cannot_measure_in_one_line(args, says, capsys):
    from aebench.cli import main

    code = main(["speed", "--models", "ae", "--archs", "mlp", "--steps", "1", "--repeats", "1",
                 *args])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and says in err, err
