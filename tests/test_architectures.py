"""The networks: the literature's benchmark ConvNets at their published sizes, and the plain
conv family growing with the image size while staying as it was for 28×28 and 32×32."""

from __future__ import annotations

import pytest
import torch

from aebench import models
from aebench.core.errors import UsageError
from aebench.models.backbones import conv_depth
from tests.conftest import one_line_error


def _params(name: str, arch: str, shape: tuple[int, int, int], latent: int = 16) -> int:
    with torch.device("meta"):
        model = models.create(name, arch=arch, image_shape=list(shape), latent_dim=latent)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
@pytest.mark.parametrize("name", ["ae", "vae", "vae-gan"])
def test_bench_conv_reconstructs_each_published_image_size(name, shape):
    torch.manual_seed(0)
    model = models.create(name, arch="bench-conv", image_shape=list(shape), latent_dim=16)
    x = torch.rand(3, *shape)
    assert model.reconstruct(x).shape == x.shape
    assert model.sample(2).shape == (2, *shape)
    assert torch.isfinite(model.loss(x)["loss"])


def test_bench_conv_has_the_published_parameter_count():
    """Chadebec et al. (2022)'s MNIST ConvNet as a 16-d VAE: 17.2 M parameters (the size the
    speed issue measured); the encoder alone is the four convolutions plus the code layer."""
    assert _params("vae", "bench-conv", (1, 28, 28)) == pytest.approx(17.23e6, rel=0.005)
    convs = sum(4 * 4 * a * b + b for a, b in [(1, 128), (128, 256), (256, 512), (512, 1024)])
    norms = 2 * (128 + 256 + 512 + 1024)
    with torch.device("meta"):
        vae = models.create("vae", arch="bench-conv", latent_dim=16)
    assert sum(p.numel() for p in vae.encoder.parameters()) == convs + norms + 1024 * 32 + 32


def test_bench_conv_refuses_other_sizes_in_one_line(tmp_path, capsys):
    from PIL import Image

    with pytest.raises(UsageError, match="28x28, 32x32, 64x64"):
        models.create("vae", arch="bench-conv", image_shape=[1, 48, 48])
    for i in range(2):
        Image.new("L", (48, 48), color=40 * i).save(tmp_path / f"{i}.png")
    line = one_line_error(capsys, ["train", "vae", "--arch", "bench-conv", "--dataset",
                                   "image-folder", "--data-dir", str(tmp_path),
                                   "--out", str(tmp_path / "run")])  # fmt: skip
    assert "bench-conv" in line and "48x48" in line
    assert not (tmp_path / "run").exists()


def test_conv_grows_with_the_image_size_and_keeps_its_small_image_nets():
    assert [conv_depth(s, s) for s in (28, 32, 48, 64, 128)] == [2, 2, 2, 3, 4]
    # 28x28 and 32x32: the two-convolution nets of before, to the parameter
    old = [  # the layer list of the 2026-11 conv VAE, counted by hand: weights + biases
        1 * 32 * 16 + 32, 32 * 64 * 16 + 64, 64 * 7 * 7 * 32 + 32,  # encoder
        16 * 64 * 7 * 7 + 64 * 7 * 7, 64 * 32 * 16 + 32, 32 * 1 * 16 + 1,  # decoder
    ]  # fmt: skip
    assert _params("vae", "conv", (1, 28, 28)) == sum(old)
    with torch.device("meta"):
        small = models.create("vae", arch="conv", image_shape=[1, 28, 28])
        big = models.create("vae", arch="conv", image_shape=[3, 64, 64])
    assert {k for k in small.state_dict() if k.startswith("encoder.0.net")} == {
        "encoder.0.net.0.weight", "encoder.0.net.0.bias",
        "encoder.0.net.2.weight", "encoder.0.net.2.bias",
    }  # fmt: skip
    convs = [m for m in big.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128]
    x = torch.rand(2, 3, 64, 64)
    net = models.create("vae", arch="conv", image_shape=[3, 64, 64])
    assert net.reconstruct(x).shape == x.shape
    with pytest.raises(UsageError, match="divisible by 8"):
        models.create("vae", arch="conv", image_shape=[1, 68, 68])


def test_burda2015_mlp_is_the_papers_784_200_200_50_tanh_network():
    """Burda et al. (2016): two deterministic layers of 200 tanh units each way, a 50-d
    Gaussian code: (784·200 + 200) + (200·200 + 200) + (200·100 + 100) in the encoder (mean
    and log-variance), the mirror image to 784 logits in the decoder."""
    enc = 784 * 200 + 200 + 200 * 200 + 200 + 200 * 100 + 100
    dec = 50 * 200 + 200 + 200 * 200 + 200 + 200 * 784 + 784
    assert _params("vae", "burda2015-mlp", (1, 28, 28), latent=50) == enc + dec == 425_284
    vae = models.create("vae", arch="burda2015-mlp", latent_dim=50)
    assert sum(isinstance(m, torch.nn.Tanh) for m in vae.modules()) == 4
    assert not any(isinstance(m, torch.nn.LeakyReLU | torch.nn.ReLU) for m in vae.modules())
    x = torch.rand(3, 1, 28, 28)
    assert vae.reconstruct(x).shape == x.shape and torch.isfinite(vae.loss(x)["loss"])


@pytest.mark.parametrize(("shape", "latent"), [((1, 32, 32), 16), ((3, 32, 32), 128),
                                               ((3, 64, 64), 64)])  # fmt: skip
@pytest.mark.parametrize("name", ["ae", "vae", "vae-gan"])
def test_ghosh2020_conv_reconstructs_its_image_sizes(name, shape, latent):
    torch.manual_seed(0)
    model = models.create(name, arch="ghosh2020-conv", image_shape=list(shape), latent_dim=latent)
    x = torch.rand(2, *shape)
    assert model.reconstruct(x).shape == x.shape
    assert model.sample(2).shape == (2, *shape)
    assert torch.isfinite(model.loss(x)["loss"])


def test_ghosh2020_conv_has_the_official_codes_layers():
    """MNIST padded to 32×32, a 16-d VAE: four 4×4 stride-2 convolutions 1→128→…→1024 with
    batch norm, linear 1024·2·2 → 32; linear 16 → 1024·8·8, transposed convolutions to 512 and
    256 with batch norm, one 4×4 convolution to the image: 22.76 M parameters."""
    convs = sum(16 * a * b + b for a, b in [(1, 128), (128, 256), (256, 512), (512, 1024)])
    norms = 2 * (128 + 256 + 512 + 1024) + 2 * (512 + 256)
    fcs = 4096 * 32 + 32 + 16 * 65536 + 65536
    deconvs = 16 * 1024 * 512 + 512 + 16 * 512 * 256 + 256 + 16 * 256 + 1
    assert _params("vae", "ghosh2020-conv", (1, 32, 32)) == convs + norms + fcs + deconvs
    assert convs + norms + fcs + deconvs == pytest.approx(22.76e6, rel=0.001)
    with pytest.raises(UsageError, match="32x32, 64x64"):
        models.create("vae", arch="ghosh2020-conv", image_shape=[1, 28, 28])


@pytest.mark.parametrize("arch", ["bench-conv", "burda2015-mlp", "ghosh2020-conv"])
def test_a_papers_net_refuses_the_width_and_hidden_it_would_ignore(arch, capsys):
    """The literature nets have their paper's sizes: a width or hidden other than the default
    is refused in one line (it used to be dropped without a word); the defaults still build,
    and the mlp and conv nets take both."""
    shape = [1, 32, 32] if arch == "ghosh2020-conv" else [1, 28, 28]
    for option, value in (("width", 64), ("hidden", (200, 200))):
        with pytest.raises(UsageError, match=f"{option} sizes the mlp and conv nets"):
            models.create("vae", arch=arch, image_shape=shape, **{option: value})
    models.create("vae", arch=arch, image_shape=shape, width=32, hidden=[512, 256])
    assert models.create("vae", arch="conv", width=8).cfg.width == 8
    assert models.create("vae", arch="mlp", hidden=[64]).cfg.hidden == (64,)
    line = one_line_error(capsys, ["train", "vae", "--arch", arch, "-o", "width=64",
                                   "--out", "unused"])  # fmt: skip
    assert "width sizes the mlp and conv nets" in line


def test_a_config_with_its_own_width_default_builds_on_a_papers_net():
    """The refusal compares with the config's own defaults, not ModelConfig's: a plugin config
    whose width defaults to 64 is not refused when nobody set it."""
    import dataclasses

    from aebench.models.vae.config import VAEConfig

    @dataclasses.dataclass(frozen=True)
    class WideConfig(VAEConfig):
        width: int = 64

    WideConfig.from_kwargs("wide", {"arch": "bench-conv"})
    with pytest.raises(UsageError, match="width sizes the mlp and conv nets"):
        WideConfig.from_kwargs("wide", {"arch": "bench-conv", "width": 32})
