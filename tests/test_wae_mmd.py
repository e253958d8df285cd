"""WAE-MMD (Tolstikhin et al. 2018): the unbiased MMD estimate and its kernel, checked against
independent computations, and the penalty's effect on the codes of a trained model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aebench import models
from aebench.models.mmd import IMQ_SCALES, imq_kernel, mmd_imq, squared_distances
from aebench.models.wae_mmd.model import L2SQ_WEIGHT
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer
from tests.conftest import subset


def _numpy_mmd(x: np.ndarray, y: np.ndarray, sigma2: float) -> float:
    """The U-statistic written out as a double loop over pairs, in float64 NumPy."""
    d = x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        dist = float(((a - b) ** 2).sum())
        return sum(2 * d * sigma2 * s / (2 * d * sigma2 * s + dist) for s in IMQ_SCALES)

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_kernel_and_estimate_match_a_numpy_double_loop() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 4)), rng.normal(1.0, 2.0, size=(7, 4))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    kernel = imq_kernel(squared_distances(tx, ty), dim=4, sigma2=2.0).numpy()
    expected = np.array([
        [sum(16 * s / (16 * s + ((a - b) ** 2).sum()) for s in IMQ_SCALES) for b in y]
        for a in x
    ])  # fmt: skip
    np.testing.assert_allclose(kernel, expected, rtol=1e-12)
    assert float(mmd_imq(tx, ty, sigma2=2.0)) == pytest.approx(_numpy_mmd(x, y, 2.0), rel=1e-10)


def test_unbiased_mmd_is_zero_on_average_for_one_distribution_and_positive_when_shifted() -> None:
    """Over repeats the estimate of two samples of N(0, I) averages to 0 (within 4 standard
    errors; a biased V-statistic would sit clearly above 0), and a shift by 1 in every
    dimension gives estimates far above that noise."""
    g = torch.Generator().manual_seed(0)
    same, shifted = [], []
    for _ in range(200):
        a, b = (
            torch.randn(64, 8, generator=g, dtype=torch.float64),
            torch.randn(64, 8, generator=g, dtype=torch.float64),
        )
        same.append(float(mmd_imq(a, b)))
        shifted.append(float(mmd_imq(a, b + 1.0)))
    same_t = torch.tensor(same)
    standard_error = float(same_t.std()) / len(same) ** 0.5
    assert abs(float(same_t.mean())) < 4 * standard_error
    assert min(same) < 0 < max(same)  # unbiased: single estimates fall on both sides of 0
    assert min(shifted) > float(same_t.mean()) + 10 * float(same_t.std())


def test_reconstruction_cost_is_the_authors_weighted_squared_error() -> None:
    torch.manual_seed(0)
    model = models.create("wae-mmd", arch="mlp", latent_dim=4, mmd_weight=0.0)
    x = torch.rand(5, 1, 28, 28)
    terms = model.loss(x)
    with torch.no_grad():
        x_hat = model.decode(model.encode(x)).numpy().astype(np.float64)
    expected = L2SQ_WEIGHT * ((x.numpy() - x_hat) ** 2).reshape(5, -1).sum(1).mean()
    assert float(terms["recon"]) == pytest.approx(expected, rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(expected, rel=1e-5)  # λ = 0: the cost alone


def test_loss_adds_lambda_times_the_mmd_to_fresh_prior_draws() -> None:
    """The penalty is λ·MMD² between the batch's codes and N(0, I) draws taken right after
    encoding, recomputed here with the NumPy double loop from the same random stream."""
    torch.manual_seed(0)
    model = models.create("wae-mmd", arch="mlp", latent_dim=3, mmd_weight=10.0).double()
    x = torch.rand(6, 1, 28, 28, dtype=torch.float64)
    torch.manual_seed(4)
    terms = model.loss(x)
    torch.manual_seed(4)
    with torch.no_grad():
        z = model.encode(x)
        prior = torch.randn_like(z)
        x_hat = model.decode(z)
    cost = L2SQ_WEIGHT * float((x - x_hat).pow(2).flatten(1).sum(1).mean())
    mmd = _numpy_mmd(z.numpy(), prior.numpy(), 1.0)
    assert float(terms["mmd"]) == pytest.approx(mmd, rel=1e-9)
    assert float(terms["loss"]) == pytest.approx(cost + 10.0 * mmd, rel=1e-9)


def test_a_batch_of_one_image_has_no_penalty_and_trains() -> None:
    model = models.create("wae-mmd", arch="mlp", latent_dim=3)
    terms = model.loss(torch.rand(1, 1, 28, 28))
    assert float(terms["mmd"]) == 0.0
    terms["loss"].backward()  # still one graph: the step goes on


def test_prior_samples_decode_draws_from_n_0_sigma2() -> None:
    model = models.create("wae-mmd", arch="mlp", latent_dim=3, prior_sigma=2.0).eval()
    images = model.sample(4, torch.Generator().manual_seed(5))
    z = 2.0 * torch.randn(4, 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(images, model.decode(z))


def test_the_penalty_pulls_the_codes_towards_the_prior(mnist5k) -> None:
    """Trained for the same steps from the same seed, λ = 10 leaves the test codes much closer
    to N(0, I) in MMD than λ = 0 (a plain AE with the same cost)."""
    data = subset(mnist5k, 1000, 500)
    distances = {}
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        model = models.create("wae-mmd", arch="mlp", latent_dim=8, mmd_weight=weight)
        trainer = Trainer(model, data, TrainConfig(epochs=3, batch_size=100, seed=0, quiet=True))
        trainer.fit()
        codes = trainer.encode_split(data.test_x).double()
        prior = torch.randn(len(codes), 8, generator=torch.Generator().manual_seed(1)).double()
        distances[weight] = float(mmd_imq(codes, prior))
    assert distances[10.0] < 0.25 * distances[0.0], distances
