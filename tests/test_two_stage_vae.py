"""The two-stage VAE (issue 27): its learned-γ likelihood against torch.distributions, the
second stage bringing its codes closer to N(0, I) than the first stage's, sampling through both
decoders by hand, and a kill in stage 2 resumed bit-identically."""

from __future__ import annotations

import torch
from torch.distributions import Normal

from aebench import models
from aebench.models.gaussian import fit_gaussian
from aebench.training.settings import TrainConfig
from aebench.training.stages import fit_stages
from tests.conftest import killed_after_stage_epoch, subset

SMALL = dict(arch="mlp", latent_dim=6, hidden=[64], second_width=64)


def test_the_learned_gamma_likelihood_is_a_gaussian_log_density() -> None:
    torch.manual_seed(0)
    model = models.create("two-stage-vae", **SMALL)
    with torch.no_grad():
        model.log_gamma_x.fill_(-1.3)
    x, z = torch.rand(5, 1, 28, 28), torch.randn(5, 6)
    mean = model.decode(z)
    want = Normal(mean, torch.tensor(-1.3).exp()).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(model.log_likelihood(x, z), want)


def _gaussian_kl(codes: torch.Tensor) -> float:
    """KL(N(m, S) ‖ N(0, I)) for the Gaussian fitted to ``codes``, closed form."""
    mean, chol = fit_gaussian(codes)
    cov = chol @ chol.T
    return 0.5 * float(torch.trace(cov) + mean @ mean - codes.shape[1] - torch.logdet(cov))


def _fit(data, checkpoint=None, resume=False):
    torch.manual_seed(1 if resume else 0)  # a resumed model equals only through its checkpoints
    model = models.create("two-stage-vae", **SMALL)
    config = TrainConfig(epochs=3, batch_size=64, device="cpu", quiet=True, seed=1)
    history, _ = fit_stages(model, data, config, "two-stage-vae", checkpoint, resume)
    return model, history


def test_the_second_stage_brings_its_codes_closer_to_the_standard_normal(mnist5k) -> None:
    model, history = _fit(subset(mnist5k, 2000, 500))
    assert [h["epoch"] for h in history if h.get("stage") == "second"] == list(range(1, 7))
    assert history[2]["test"]["gamma_x"] < 1.0  # γ_x is learned
    with torch.no_grad():
        z = model.draw_codes(mnist5k.test_x[:500].float() / 255)
        mu, logvar = model.second.moments(z)
        u = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
    assert _gaussian_kl(u) < 0.5 * _gaussian_kl(z), (_gaussian_kl(u), _gaussian_kl(z))


def test_sampling_runs_stage_twos_prior_and_decoder_then_stage_ones_decoder() -> None:
    torch.manual_seed(0)
    model = models.create("two-stage-vae", **SMALL).eval()
    images = model.sample(4, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    u, eps = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    with torch.no_grad():
        z = model.second.decoder(u) + model.second.log_gamma_z.exp() * eps
        torch.testing.assert_close(images, torch.sigmoid(model.decoder(z)))


def test_killed_in_stage_two_then_resumed_is_bit_identical(mnist5k, tmp_path, monkeypatch):
    data = subset(mnist5k, 256, 64)
    straight, _ = _fit(data)
    checkpoint = tmp_path / "checkpoint.safetensors"
    with killed_after_stage_epoch(monkeypatch, "second", 3):
        _fit(data, checkpoint)
    resumed, history = _fit(data, checkpoint, resume=True)
    assert [h["epoch"] for h in history if h.get("stage") == "second"] == list(range(1, 7))
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
