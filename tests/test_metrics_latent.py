"""Latent metrics: bound ordering of the importance-weighted NLL, closed-form KL, active units."""

from __future__ import annotations

import math

import pytest
import torch

from bench.metrics.latent import active_units, gaussian_kl, kl_elbo, nll_iw


@pytest.fixture(scope="module")
def subset(mnist5k) -> torch.Tensor:
    return mnist5k.test_x[:200]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_nll_iw_is_below_negative_elbo(trained_vae, subset):
    _, elbo = kl_elbo(trained_vae.posterior, trained_vae.log_likelihood, subset, generator=_gen())
    nll = nll_iw(trained_vae.posterior, trained_vae.log_likelihood, subset, k=50, generator=_gen())
    assert nll < -elbo
    assert math.isfinite(nll) and nll > 0


def test_nll_iw_does_not_increase_with_k(trained_vae, subset):
    post, loglik = trained_vae.posterior, trained_vae.log_likelihood
    values = [nll_iw(post, loglik, subset, k=k, generator=_gen(k)) for k in (1, 10, 100)]
    assert values[0] >= values[1] >= values[2]


def test_nll_iw_with_one_sample_estimates_negative_elbo(trained_vae, subset):
    post, loglik = trained_vae.posterior, trained_vae.log_likelihood
    _, elbo = kl_elbo(post, loglik, subset, generator=_gen(1))
    one = nll_iw(post, loglik, subset, k=1, generator=_gen(2))
    assert one == pytest.approx(-elbo, rel=0.02)


def test_nll_iw_chunking_does_not_change_the_value(trained_vae, subset):
    post, loglik = trained_vae.posterior, trained_vae.log_likelihood
    x = subset[:20]
    whole = nll_iw(post, loglik, x, k=30, generator=_gen(5), max_rows=10_000)
    # tiny chunks draw the same numbers in a different order, so compare statistically
    chunked = nll_iw(post, loglik, x, k=30, generator=_gen(5), max_rows=7)
    assert chunked == pytest.approx(whole, rel=0.02)


def test_gaussian_kl_closed_form_matches_monte_carlo():
    gen = _gen(0)
    mu = torch.randn(1, 4, generator=gen, dtype=torch.float64)
    logvar = torch.randn(1, 4, generator=gen, dtype=torch.float64) * 0.3
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(200_000, 4, generator=gen, dtype=torch.float64)
    log_q = (-0.5 * (((z - mu) / std) ** 2 + logvar + math.log(2 * math.pi))).sum(1)
    log_p = (-0.5 * (z**2 + math.log(2 * math.pi))).sum(1)
    assert gaussian_kl(mu, logvar).item() == pytest.approx((log_q - log_p).mean().item(), abs=0.02)


def test_active_units_of_a_constant_mean_encoder_is_zero(subset):
    def collapsed(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        return torch.full((n, 8), 0.3), torch.zeros(n, 8)

    assert active_units(collapsed, subset) == 0


def test_active_units_counts_informative_units(trained_vae, subset):
    def half_informative(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = trained_vae.posterior(x)
        return torch.cat([mu, torch.zeros_like(mu)], 1), torch.cat([logvar, logvar], 1)

    n = active_units(trained_vae.posterior, subset)
    assert 0 < n <= trained_vae.latent_dim
    assert active_units(half_informative, subset) == n
