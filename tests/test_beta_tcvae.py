"""β-TCVAE (Chen et al. 2018): the three KL parts against torch.distributions, the stratified
estimate of log q(z) against the paper's equation written as a loop, its total correlation
against a brute-force estimate on Gaussians with a known TC, α = β = γ = 1 as the VAE's ELBO,
and the harness passing the training set's size."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal

from aebench import models
from aebench.models.beta_tcvae import kl_decomposition
from aebench.models.beta_tcvae.model import minibatch_log_weights, pairwise_log_density
from aebench.models.config import OptionError
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer
from tests.conftest import subset


def _codes(batch: int, d: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(batch, d, generator=g, dtype=torch.float64)
    logvar = torch.randn(batch, d, generator=g, dtype=torch.float64) * 0.3 - 1.0
    z = mu + torch.randn(batch, d, generator=g, dtype=torch.float64) * (0.5 * logvar).exp()
    return z, mu, logvar


@pytest.mark.parametrize("sampling", ["mws", "mss"])
def test_the_three_parts_sum_to_the_single_sample_kl(sampling: str) -> None:
    """mi + tc + dim_kl = log q(z|x) − log p(z) at the drawn z, whatever the estimator of
    q(z): the decomposition telescopes (densities from torch.distributions)."""
    z, mu, logvar = _codes(9, 4, seed=0)
    parts = kl_decomposition(z, mu, logvar, dataset_size=1000, sampling=sampling)
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    p = Independent(Normal(torch.zeros(4, dtype=torch.float64), 1.0), 1)
    expected = q.log_prob(z) - p.log_prob(z)
    torch.testing.assert_close(parts["mi"] + parts["tc"] + parts["dim_kl"], expected)


def test_stratified_log_qz_follows_the_papers_equation() -> None:
    """log q(z_i) ≈ log[ q(z_i|x_i)/N + Σ_{j ≠ i, i+1} q(z_i|x_j)/M + q(z_i|x_{i+1})(N−M)/(NM) ]
    with M = B − 1 (Chen et al., appendix C.2), as a NumPy loop over codes and images."""
    z, mu, logvar = _codes(6, 3, seed=1)
    n = 50
    dens = pairwise_log_density(z, mu, logvar).sum(2).exp().numpy()
    b, m = 6, 5
    expected = np.empty(b)
    for i in range(b):
        total = 0.0
        for j in range(b):
            if j == i:
                total += dens[i, j] / n
            elif j == (i + 1) % b:
                total += dens[i, j] * (n - m) / (n * m)
            else:
                total += dens[i, j] / m
        expected[i] = math.log(total)
    log_w = minibatch_log_weights(b, n, "mss", z)
    got = torch.logsumexp(log_w + pairwise_log_density(z, mu, logvar).sum(2), dim=1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    torch.testing.assert_close(log_w.exp().sum(1), torch.ones(b, dtype=torch.float64))


def test_total_correlation_matches_brute_force_on_gaussians_with_known_tc() -> None:
    """N posteriors N(μ_n, s²I) with μ_n ~ N(0, Σ − s²I): the aggregate posterior is close to
    N(0, Σ), whose TC is −½ log(1 − ρ²) for one correlated pair. The brute-force TC sums
    over all N images for every code; the stratified minibatch estimate (batches of 500)
    must agree with it, and both with the Gaussian's TC."""
    rho, s, n, d = 0.8, 0.3, 4000, 3
    g = torch.Generator().manual_seed(3)
    cov = torch.eye(d, dtype=torch.float64)
    cov[0, 1] = cov[1, 0] = rho
    chol = torch.linalg.cholesky(cov - s**2 * torch.eye(d, dtype=torch.float64))
    mu = torch.randn(n, d, generator=g, dtype=torch.float64) @ chol.T
    logvar = torch.full_like(mu, 2 * math.log(s))
    known = -0.5 * math.log(1 - rho**2)

    picks = torch.randint(n, (3000,), generator=g)
    z = mu[picks] + s * torch.randn(3000, d, generator=g, dtype=torch.float64)
    per_dim = Normal(mu[None], s).log_prob(z[:, None])  # (codes, N, d)
    log_qz = torch.logsumexp(per_dim.sum(2), 1) - math.log(n)
    log_qz_dims = (torch.logsumexp(per_dim, 1) - math.log(n)).sum(1)
    brute = float((log_qz - log_qz_dims).mean())

    estimates = []
    for _ in range(12):
        batch = torch.randperm(n, generator=g)[:500]
        zb = mu[batch] + s * torch.randn(500, d, generator=g, dtype=torch.float64)
        parts = kl_decomposition(zb, mu[batch], logvar[batch], dataset_size=n, sampling="mss")
        estimates.append(float(parts["tc"].mean()))
    stratified = float(np.mean(estimates))
    assert abs(brute - known) < 0.06, (brute, known)
    assert abs(stratified - brute) < 0.06, (stratified, brute)


def test_unit_weights_give_the_vae_elbo_in_expectation() -> None:
    """α = β = γ = 1: the loss is recon + log q(z|x) − log p(z) at one draw; averaged over
    draws it matches the VAE's loss with its closed-form KL (same networks) within 4 SE."""
    torch.manual_seed(0)
    tc = models.create("beta-tcvae", arch="mlp", latent_dim=3, alpha=1, beta=1, gamma=1)
    vae = models.create("vae", arch="mlp", latent_dim=3)
    tc, vae = tc.double(), vae.double()
    vae.load_state_dict(tc.state_dict())
    x = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3, dtype=torch.float64))
    with torch.no_grad():
        ours = torch.tensor([float(tc.loss(x)["loss"]) for _ in range(2000)])
        elbo = torch.tensor([float(vae.loss(x)["loss"]) for _ in range(2000)])
    difference = float(ours.mean() - elbo.mean())
    standard_error = math.sqrt(float(ours.var() + elbo.var()) / 2000)
    assert abs(difference) < 4 * standard_error


def test_the_loss_weights_each_part() -> None:
    """loss = recon + α·mi + β·tc + γ·dim_kl with the reported parts (same draw)."""
    model = models.create("beta-tcvae", arch="mlp", latent_dim=4, alpha=0.5, beta=6, gamma=2)
    x = torch.bernoulli(torch.full((8, 1, 28, 28), 0.3))
    with torch.no_grad():
        t = model.loss(x)
    expected = t["recon"] + 0.5 * t["mi"] + 6 * t["tc"] + 2 * t["dim_kl"]
    torch.testing.assert_close(t["loss"], expected)


def test_the_harness_passes_the_training_set_size(mnist5k) -> None:
    """Trained through the Trainer, the model sees N = the training images (not the batch),
    and the history logs the total correlation per epoch."""
    data = subset(mnist5k, 96, 32)
    torch.manual_seed(0)
    model = models.create("beta-tcvae", arch="mlp", latent_dim=4, sampling="mss")
    history = Trainer(model, data, TrainConfig(epochs=1, batch_size=32, seed=0, quiet=True)).fit()
    assert model.progress.train_size == 96
    row = history[-1]["train"]
    assert {"mi", "tc", "dim_kl", "tc_stratified"} <= set(row)
    assert all(math.isfinite(float(v)) for v in row.values())
    # the loss after training uses N = 96: its parts are those of a hand-made decomposition
    # with dataset_size 96 on the same draw, and differ from those with N = the batch (32)
    x = data.train_x[:32].float() / 255
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        parts = model.loss(x)
        torch.manual_seed(1)
        mu, logvar = model.moments(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        by_hand = {n: kl_decomposition(z, mu, logvar, n, "mss") for n in (96, 32)}
    for key in ("mi", "tc", "dim_kl"):
        torch.testing.assert_close(parts[key], by_hand[96][key].mean())
    assert not torch.allclose(by_hand[96]["tc"].mean(), by_hand[32]["tc"].mean())


def test_sampling_is_checked_in_one_line() -> None:
    with pytest.raises(OptionError, match="sampling must be one of mws, mss"):
        models.create("beta-tcvae", sampling="importance")
