"""VampPrior (Tomczak & Welling 2018): the prior's log density against a hand-written mixture,
its KL term, its sampler, and pseudo-inputs that are learned images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal

from aebench import models


def _model(**options):
    torch.manual_seed(0)
    return models.create("vamp", arch="mlp", latent_dim=3, **options).double()


def test_log_prior_is_the_mixture_of_the_pseudo_inputs_posteriors() -> None:
    """log (1/K) Σₖ Πᵢ N(zᵢ; μₖᵢ, σₖᵢ²), written as a NumPy loop over components and
    dimensions, at the pseudo-inputs' posterior moments."""
    model = _model(components=7)
    z = torch.randn(4, 3, dtype=torch.float64)
    with torch.no_grad():
        mu, logvar = (t.numpy() for t in model.moments(model.pseudo_inputs()))
        ours = model.log_prior(z).numpy()
        theirs = model.prior().log_prob(z).numpy()
    expected = []
    for row in z.numpy():
        density = 0.0
        for k in range(7):
            var = np.exp(logvar[k])
            density += np.prod(np.exp(-((row - mu[k]) ** 2) / (2 * var)) / np.sqrt(2 * np.pi * var))
        expected.append(math.log(density / 7))
    np.testing.assert_allclose(ours, expected, rtol=1e-10)
    np.testing.assert_allclose(theirs, expected, rtol=1e-10)


def test_kl_term_is_log_q_minus_log_prior_at_the_drawn_code() -> None:
    model = _model(components=5)
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    torch.manual_seed(3)
    terms = model.loss(x)
    torch.manual_seed(3)
    mu, logvar = model.moments(x)
    z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    expected = (q.log_prob(z) - model.prior().log_prob(z)).mean()
    torch.testing.assert_close(terms["kl"], expected, rtol=1e-10, atol=1e-10)


def test_prior_samples_decode_draws_from_a_uniformly_chosen_pseudo_inputs_posterior() -> None:
    """Each sample picks a component uniformly (the generator's first draw), then decodes
    μₖ + σₖ·ε at that component's moments."""
    model = _model(components=3).eval()
    images = model.sample(6, torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(2)
    which = torch.randint(3, (6,), generator=gen)  # the component draw comes first
    eps = torch.randn(6, 3, generator=gen).double()
    with torch.no_grad():
        mu, logvar = model.moments(model.pseudo_inputs())
        expected = model.decode(mu[which] + eps * (0.5 * logvar[which]).exp())
    torch.testing.assert_close(images, expected)
    assert len(set(which.tolist())) > 1  # the draws do use more than one component


def test_pseudo_inputs_are_images_that_training_moves() -> None:
    model = _model(components=4)
    u = model.pseudo_inputs()
    u = u.detach()
    assert u.shape == (4, 1, 28, 28) and 0 <= float(u.min()) <= float(u.max()) <= 1
    assert float(u.mean()) == pytest.approx(0.05, abs=0.01)  # the authors' initialisation
    model.loss(torch.rand(2, 1, 28, 28, dtype=torch.float64))["loss"].backward()
    assert model.pseudo.grad is not None and model.pseudo.grad.abs().sum() > 0
