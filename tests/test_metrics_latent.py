"""Latent metrics: bound ordering of the importance-weighted NLL, closed-form KL, active units."""

from __future__ import annotations

import math

import pytest
import torch

from aebench.metrics.latent import active_units, iw_bounds, kl_elbo, kl_per_image
from aebench.models.gaussian import DiagonalGaussian, StandardNormal, kl_to_standard_normal


@pytest.fixture(scope="module")
def subset(mnist5k) -> torch.Tensor:
    return mnist5k.test_x[:200]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def nll_iw(*args, **kwargs) -> float:
    """The importance-weighted NLL alone."""
    return iw_bounds(*args, **kwargs)[0]


def _parts(vae):
    return vae.posterior, vae.prior(), vae.log_likelihood


def test_nll_iw_is_below_negative_elbo(trained_vae, subset):
    _, elbo = kl_elbo(*_parts(trained_vae), subset, generator=_gen())
    nll = nll_iw(*_parts(trained_vae), subset, k=50, generator=_gen())
    assert nll < -elbo
    assert math.isfinite(nll) and nll > 0


def test_nll_iw_does_not_increase_with_k(trained_vae, subset):
    values = [nll_iw(*_parts(trained_vae), subset, k=k, generator=_gen(k)) for k in (1, 10, 100)]
    assert values[0] >= values[1] >= values[2]


def test_nll_iw_with_one_sample_estimates_negative_elbo(trained_vae, subset):
    _, elbo = kl_elbo(*_parts(trained_vae), subset, generator=_gen(1))
    one = nll_iw(*_parts(trained_vae), subset, k=1, generator=_gen(2))
    assert one == pytest.approx(-elbo, rel=0.02)


def test_nll_iw_chunking_does_not_change_the_value(trained_vae, subset):
    x = subset[:20]
    whole = nll_iw(*_parts(trained_vae), x, k=30, generator=_gen(5), max_rows=10_000)
    # tiny chunks draw other numbers, so compare statistically
    chunked = nll_iw(*_parts(trained_vae), x, k=30, generator=_gen(5), max_rows=7)
    assert chunked == pytest.approx(whole, rel=0.02)


def test_the_iw_gain_compares_the_bounds_on_the_same_images(trained_vae, subset):
    """The −ELBO that iw_bounds returns is that of its own images: it agrees with kl_elbo on
    those images (many draws), and the gain is ≥ 0 (0 at K = 1, where the two bounds are
    one)."""
    x = subset[:100]
    nll, neg_elbo = iw_bounds(*_parts(trained_vae), x, k=50, generator=_gen(3))
    draws = [kl_elbo(*_parts(trained_vae), x, generator=_gen(10 + i))[1] for i in range(20)]
    assert neg_elbo == pytest.approx(-sum(draws) / len(draws), rel=0.005)
    assert nll == nll_iw(*_parts(trained_vae), x, k=50, generator=_gen(3))
    assert 0 < neg_elbo - nll < 0.1 * nll
    one, one_elbo = iw_bounds(*_parts(trained_vae), x, k=1, generator=_gen(4))
    assert one == pytest.approx(one_elbo, abs=1e-9)


def test_gaussian_kl_closed_form_matches_monte_carlo():
    gen = _gen(0)
    mu = torch.randn(1, 4, generator=gen, dtype=torch.float64)
    logvar = torch.randn(1, 4, generator=gen, dtype=torch.float64) * 0.3
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(200_000, 4, generator=gen, dtype=torch.float64)
    log_q = (-0.5 * (((z - mu) / std) ** 2 + logvar + math.log(2 * math.pi))).sum(1)
    log_p = (-0.5 * (z**2 + math.log(2 * math.pi))).sum(1)
    assert kl_to_standard_normal(mu, logvar).item() == pytest.approx(
        (log_q - log_p).mean().item(), abs=0.02
    )
    # the latent metrics reach the same closed form through torch.distributions
    q, p = DiagonalGaussian(mu, logvar), StandardNormal(4)
    assert torch.equal(kl_per_image(q, p, z[:1]), kl_to_standard_normal(mu, logvar))


def test_kl_without_a_closed_form_is_estimated_from_the_sample():
    """A posterior torch.distributions has no registered KL for (here a Laplace) still gets a
    KL: the one-sample estimate log q(z) - log p(z), unbiased. Per dimension,
    KL(Laplace(0, 1) ‖ N(0, 1)) = ½ log 2π + ½ E[z²] − (1 + log 2) = 0.2258 nats."""
    from torch.distributions import Independent, Laplace

    torch.manual_seed(0)
    q = Independent(Laplace(torch.zeros(50_000, 2), torch.ones(50_000, 2)), 1)
    z = q.sample()
    exact = 2 * (0.5 * math.log(2 * math.pi) + 1.0 - 1.0 - math.log(2.0))
    assert float(kl_per_image(q, StandardNormal(2), z).mean()) == pytest.approx(exact, abs=0.02)


def test_active_units_of_a_constant_mean_encoder_is_zero(subset):
    def collapsed(x: torch.Tensor) -> DiagonalGaussian:
        n = x.shape[0]
        return DiagonalGaussian(torch.full((n, 8), 0.3), torch.zeros(n, 8))

    assert active_units(collapsed, subset) == 0


def test_active_units_counts_informative_units(trained_vae, subset):
    def half_informative(x: torch.Tensor) -> DiagonalGaussian:
        mu, logvar = trained_vae.moments(x)
        return DiagonalGaussian(
            torch.cat([mu, torch.zeros_like(mu)], 1), torch.cat([logvar, logvar], 1)
        )

    n = active_units(trained_vae.posterior, subset)
    assert 0 < n <= trained_vae.latent_dim
    assert active_units(half_informative, subset) == n


def test_the_fast_bernoulli_likelihood_equals_bce_with_logits():
    """Evaluation's Bernoulli log-likelihood (no autograd) against PyTorch's
    binary_cross_entropy_with_logits in float64, saturated logits included; with gradients
    the training path is used and agrees too."""
    from torch.nn import functional as F

    from aebench.models.base import bernoulli_log_likelihood, recon_nll

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 1, 28, 28, generator=gen) * 6
    logits[0, 0, 0, :4] = torch.tensor([200.0, -200.0, 90.0, -90.0])  # far past exp's range
    x = (torch.rand(64, 1, 28, 28, generator=gen) < 0.3).float()
    x[:, :, 0, 4:] = torch.rand(64, 1, 24, generator=gen)  # grey targets too
    ref = -F.binary_cross_entropy_with_logits(logits.double(), x.double(), reduction="none")
    ref = ref.flatten(1).sum(1)
    fast = bernoulli_log_likelihood(logits, x).double()
    assert torch.isfinite(fast).all()
    assert torch.allclose(fast, ref, rtol=1e-5, atol=1e-3)
    with torch.no_grad():
        assert torch.allclose(-recon_nll(logits, x, "bce", 1.0).double(), ref, atol=1e-3)
    trained = logits.clone().requires_grad_()
    nll = recon_nll(trained, x, "bce", 1.0)
    nll.sum().backward()
    assert torch.allclose(-nll.detach().double(), ref, atol=1e-3) and trained.grad is not None
