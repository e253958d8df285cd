"""IWAE (Burda et al. 2016): the importance weights against a hand computation with
torch.distributions, K = 1 as the ELBO, and the bound tightening with K on a trained model."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal

from aebench import models
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer
from tests.conftest import subset


def test_log_weights_match_torch_distributions() -> None:
    """log w = log p(x|z) + log p(z) − log q(z|x), with each density from torch.distributions
    at the same z the model drew."""
    torch.manual_seed(0)
    model = models.create("iwae", arch="mlp", latent_dim=3).double()
    x = torch.bernoulli(torch.full((2, 1, 28, 28), 0.3, dtype=torch.float64))
    torch.manual_seed(7)
    parts = model.log_weights(x, k=4)
    torch.manual_seed(7)
    mu, logvar = model.moments(x)
    z = mu + torch.randn(4, *mu.shape, dtype=torch.float64) * (0.5 * logvar).exp()
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    p = Independent(Normal(torch.zeros(3, dtype=torch.float64), 1.0), 1)
    logits = model.decode_logits(z.flatten(0, 1)).view(4, 2, -1)
    lik = Independent(Bernoulli(logits=logits), 1).log_prob(x.flatten(1).expand(4, 2, -1))
    expected = lik + p.log_prob(z) - q.log_prob(z)
    torch.testing.assert_close(parts["log_w"], expected, rtol=1e-10, atol=1e-8)


def test_the_loss_is_minus_the_log_mean_of_the_importance_weights() -> None:
    """At K = 5: −mean_b log (1/5) Σₖ exp(log wₖ), from the same draws (a mean of log wₖ, the
    ELBO, would be lower than this by Jensen's inequality)."""
    model = models.create("iwae", arch="mlp", latent_dim=3, k=5).double()
    x = torch.bernoulli(torch.full((3, 1, 28, 28), 0.3, dtype=torch.float64))
    torch.manual_seed(11)
    loss = model.loss(x)["loss"]
    torch.manual_seed(11)
    log_w = model.log_weights(x, 5)["log_w"]
    expected = -(log_w.exp().mean(0).log()).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-8)
    assert float(loss) < float(-log_w.mean())  # tighter than the 5-sample ELBO


@pytest.mark.parametrize("k", [1, 5, 50])
def test_the_declared_decodes_per_image_are_the_codes_the_loss_decodes(k: int) -> None:
    model = models.create("iwae", arch="mlp", latent_dim=3, k=k)
    decoded_rows = []
    decode = model.decode_logits

    def counting(z: torch.Tensor) -> torch.Tensor:
        decoded_rows.append(z.shape[0])
        return decode(z)

    model.decode_logits = counting
    model.loss(torch.rand(8, 1, 28, 28))
    assert sum(decoded_rows) == 8 * model.decodes_per_image == 8 * k


def test_one_sample_bound_is_the_elbo_in_expectation() -> None:
    """At K = 1 the bound is the single-sample ELBO; averaged over many draws it matches the
    VAE's ELBO with the closed-form KL (recon estimated on the same networks) within 4 SE."""
    torch.manual_seed(0)
    iwae = models.create("iwae", arch="mlp", latent_dim=3, k=1).double()
    vae = models.create("vae", arch="mlp", latent_dim=3).double()
    vae.load_state_dict(iwae.state_dict())
    x = torch.bernoulli(torch.full((1, 1, 28, 28), 0.3, dtype=torch.float64))
    with torch.no_grad():
        one = torch.tensor([float(iwae.loss(x)["loss"]) for _ in range(2000)])
        elbo = torch.tensor([float(vae.loss(x)["loss"]) for _ in range(2000)])
    difference = float(one.mean() - elbo.mean())
    standard_error = math.sqrt(float(one.var() + elbo.var()) / 2000)
    assert abs(difference) < 4 * standard_error


def test_the_bound_tightens_with_k_on_a_trained_model(mnist5k) -> None:
    data = subset(mnist5k, 1000, 200)
    torch.manual_seed(0)
    model = models.create("iwae", arch="mlp", latent_dim=8)
    Trainer(model, data, TrainConfig(epochs=2, batch_size=100, seed=0, quiet=True)).fit()
    x = data.test_x[:200].float() / 255
    torch.manual_seed(1)
    with torch.no_grad():
        bounds = {}
        for k in (1, 5, 50):
            log_w = model.log_weights(x, k)["log_w"]
            bounds[k] = float((torch.logsumexp(log_w, 0) - math.log(k)).mean())
    assert bounds[1] < bounds[5] < bounds[50], bounds
    assert bounds[50] - bounds[1] > 0.5  # nats per image: a visible gap, not rounding


def test_k_is_checked_in_one_line() -> None:
    from aebench.models.config import OptionError

    with pytest.raises(OptionError, match="k must be 1 to 5000"):
        models.create("iwae", k=0)
