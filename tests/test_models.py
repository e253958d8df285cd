"""Every registered model on both backbones: shapes, finite loss terms, learning, KL, sampling."""

from __future__ import annotations

import math

import pytest
import torch

from aebench import models
from aebench.core.errors import UsageError
from aebench.core.plugins import load_env_plugins
from aebench.models.gaussian import DiagonalGaussian, StandardNormal, kl_to_standard_normal
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer
from tests.conftest import subset

#: every registered model: the built-ins, entry points and the files in $AEBENCH_PLUGINS, so a
#: plugin model gets the same contract tests (AEBENCH_PLUGINS=my_model.py pytest tests/...)
load_env_plugins()
BUILTIN = models.available()
#: every (model, backbone) pair a model can be built on (VQ-VAE's grid code: conv only)
BUILDABLE = [(n, a) for n in BUILTIN for a in ("mlp", "conv") if models.supports_arch(n, a)]


def first_arch(name: str) -> str:
    """``mlp``, the faster backbone, where the model can be built on it; else ``conv``."""
    return "mlp" if models.supports_arch(name, "mlp") else "conv"


@pytest.mark.parametrize(("name", "arch"), BUILDABLE)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_shapes_and_finite_terms(name, arch, shape):
    torch.manual_seed(0)
    m = models.create(name, arch=arch, image_shape=shape, latent_dim=5)
    x = torch.rand(4, *shape)
    terms = m.loss(x)
    assert "loss" in terms
    for key, value in terms.items():
        assert value.ndim == 0 and torch.isfinite(value), key
    assert m.encode(x).shape == (4, *m.code_shape)
    assert m.reconstruct(x).shape == x.shape
    s = m.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, *shape) and s.min() >= 0 and s.max() <= 1


@pytest.mark.parametrize("name", BUILTIN)
def test_test_loss_after_three_epochs_is_lower_than_after_one(name, mnist5k):
    m = models.create(name, arch=first_arch(name))
    data = subset(mnist5k, 3000, 500)  # 47 steps an epoch (24 for a two-batch step)
    history = Trainer(m, data, TrainConfig(epochs=3, seed=0, quiet=True), name).fit()
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for h in history:
        assert all(math.isfinite(v) for v in h["train"].values())
        assert all(math.isfinite(v) for v in h["test"].values())
    assert history[2]["test"]["loss"] < history[0]["test"]["loss"]


def test_vae_closed_form_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu = torch.randn(3, 4)
    logvar = torch.randn(3, 4) * 0.5
    std = (0.5 * logvar).exp()
    q = torch.distributions.Normal(mu, std)
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
    closed = kl_to_standard_normal(mu, logvar)
    torch.testing.assert_close(closed, mc, rtol=0.02, atol=0.02)


def test_vae_kl_term_is_the_closed_form_of_its_posterior():
    torch.manual_seed(1)
    m = models.create("vae", latent_dim=6)
    x = torch.rand(8, 1, 28, 28)
    mu, logvar = m.moments(x)
    torch.testing.assert_close(m.loss(x)["kl"], kl_to_standard_normal(mu, logvar).mean())
    q, p = m.posterior(x), m.prior()
    assert isinstance(q, DiagonalGaussian) and isinstance(p, StandardNormal)
    assert q.batch_shape == (8,) and q.event_shape == (6,)
    kl = torch.distributions.kl_divergence(q, p)  # the same closed form, through the registry
    torch.testing.assert_close(m.loss(x)["kl"], kl.mean())


def test_models_declare_their_samplers():
    """Every built-in model names its samplers and its default in its own class (not by
    inheritance, which would let a new model silently take its parent's), every name a
    registered sampler, the default among them."""
    vae, ae = models.create("vae"), models.create("ae")
    assert vae.default_sampler == "prior" and vae.samplers[0] == "prior"
    assert ae.default_sampler == "gaussian" and "gmm" in ae.samplers
    from aebench.metrics import samplers

    for name in BUILTIN:
        cls = models.get(name)[0]
        assert {"samplers", "default_sampler"} <= set(vars(cls)), name
        assert cls.default_sampler in cls.samplers, name
        assert all(s in samplers.available() for s in cls.samplers), name


@pytest.mark.parametrize("name", BUILTIN)
def test_every_declared_sampler_applies_and_draws_images(name):
    """The capability check of each declared sampler passes, and the sampler draws images of
    the data's shape from the model's codes (the fitted ones from a few random codes)."""
    from aebench.metrics import samplers

    torch.manual_seed(0)
    m = models.create(name, arch=first_arch(name), image_shape=(1, 28, 28), latent_dim=3).eval()
    assert m.default_sampler in m.samplers
    codes = lambda: m.encode(torch.rand(40, 1, 28, 28)).detach()  # noqa: E731
    for sampler in m.samplers:
        assert samplers.problem(sampler, m) is None, sampler
        images = samplers.get(sampler)(m, codes, 6, torch.Generator().manual_seed(1))
        assert (
            images.shape == (6, 1, 28, 28) and 0 <= float(images.min()) <= float(images.max()) <= 1
        )


def test_beta_weights_the_kl_term():
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    a, b = models.create("vae"), models.create("beta-vae")
    b.load_state_dict(a.state_dict())
    torch.manual_seed(0)
    ta = a.loss(x)
    torch.manual_seed(0)
    tb = b.loss(x)
    # same weights, same noise: the same terms, and beta = 2 weights the KL twice (compared
    # as sums, since loss - recon cancels most float32 digits of a ~500-nat reconstruction term)
    torch.testing.assert_close(tb["kl"], ta["kl"])
    torch.testing.assert_close(tb["loss"], tb["recon"] + 2.0 * ta["kl"])
    torch.testing.assert_close(ta["loss"], ta["recon"] + ta["kl"])


def test_ae_samples_follow_the_fitted_code_gaussian():
    torch.manual_seed(0)
    m = models.create("ae", latent_dim=3)
    a = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.5, 0.3]])
    codes = torch.randn(20_000, 3) @ a.T + torch.tensor([1.0, -2.0, 0.5])
    m.fit_prior(codes)
    torch.testing.assert_close(m.code_mean, torch.tensor([1.0, -2.0, 0.5]), atol=0.05, rtol=0)
    cov = m.code_chol @ m.code_chol.T
    torch.testing.assert_close(cov, a @ a.T, atol=0.08, rtol=0)


def test_vae_gan_declares_three_disjoint_phases():
    m = models.create("vae-gan")
    phases = m.phases()
    assert [p.name for p in phases] == ["encoder", "decoder", "discriminator"]
    ids = [{id(p) for p in ph.params} for ph in phases]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2]) and not (ids[0] & ids[2])
    assert set().union(*ids) == {id(p) for p in m.parameters()}


@pytest.mark.parametrize("name", BUILTIN)
def test_a_train_step_reads_nothing_back_to_the_host(name):
    """A step of every registered model dispatches no ``aten::_local_scalar_dense`` (what
    ``.item()`` or ``float(t)`` run): on a GPU each such read would stall the step."""
    from aebench.data import ImageData
    from aebench.perf.counters import count

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 1, 28, 28), generator=g, dtype=torch.uint8)
    data = ImageData(
        "toy", x, torch.zeros(64, dtype=torch.long), x, torch.zeros(64, dtype=torch.long)
    )
    trainer = Trainer(models.create(name, arch=first_arch(name), latent_dim=4), data,
                      TrainConfig(batch_size=32, quiet=True), name)  # fmt: skip
    batch = ImageData.batch(trainer.data.train_x, slice(0, 32))
    trainer.train_step(batch)  # warm: lazy initialisation may read once
    assert count(lambda: trainer.train_step(batch))["host_reads"] == 0


@pytest.mark.parametrize("name", BUILTIN)
def test_the_hashed_options_are_the_options_the_model_trains_with(name):
    """A run's identity hashes ``resolved_options``: they must be exactly the built model's
    own config (every field, its value), or a subclass's options would go unhashed — and a
    suite would refuse them."""
    model = models.create(name)
    config = getattr(model, "config", None)
    assert isinstance(config, dict)
    built = {k: v for k, v in config.items() if k not in ("image_shape", "arch", "latent_dim")}
    assert models.resolved_options(name, {}) == built


def test_vae_gan_weighs_the_encoders_kl_by_beta():
    """β reaches the encoder's prior term with or without a warm-up (it was applied only with
    one): the encoder loss less its reconstruction terms is β times the closed-form KL."""
    torch.manual_seed(0)
    x = torch.rand(8, 1, 28, 28, dtype=torch.float64)
    for beta in (1.0, 3.0):
        m = models.create("vae-gan", arch="mlp", latent_dim=4, beta=beta).double()
        t = m.loss(x)
        rest = m.cfg.pixel_weight * t["recon"] + m.cfg.feature_weight * t["feature_recon"]
        mu, logvar = m.moments(x)
        kl = kl_to_standard_normal(mu, logvar).mean()
        torch.testing.assert_close(t["encoder_loss"] - rest, beta * kl, rtol=1e-9, atol=0)


def test_vae_gan_refuses_the_lr_it_does_not_use():
    with pytest.raises(UsageError, match="lr is not used: set lr_gen"):
        models.create("vae-gan", lr=5e-4)
    assert models.create("vae-gan", lr_gen=5e-4).cfg.lr_gen == 5e-4
