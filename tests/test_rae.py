"""RAE-L2 and RAE-GP (Ghosh et al. 2020): each regulariser against an independent computation,
the code penalty as the authors' code defines it, and the ex-post mixture the samples come from."""

from __future__ import annotations

import pytest
import torch

from aebench import models
from aebench.models.rae.model import jacobian_norm_sq
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer
from tests.conftest import subset


def _jacobian_penalty(model, z: torch.Tensor) -> torch.Tensor:
    """‖∂D(z_b)/∂z_b‖²_F averaged over the batch, from torch.autograd.functional.jacobian."""
    per_row = []
    for row in z:
        jac = torch.autograd.functional.jacobian(
            lambda v: model.decode(v[None])[0], row, vectorize=True
        )
        per_row.append(jac.pow(2).sum())
    return torch.stack(per_row).mean()


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_exact_gradient_penalty_equals_the_jacobian_norm(arch: str) -> None:
    torch.manual_seed(0)
    model = models.create("rae-gp", arch=arch, latent_dim=4, gp_probes=0).double()
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    terms = model.loss(x)
    expected = _jacobian_penalty(model, model.encode(x).detach())
    torch.testing.assert_close(terms["decoder_penalty"], expected, rtol=1e-9, atol=0)


def test_the_exact_penalty_trains_the_decoder_with_the_jacobians_gradient() -> None:
    """∂penalty/∂θ_dec equals the gradient of the Jacobian norm built by
    torch.autograd.functional.jacobian with create_graph=True."""
    torch.manual_seed(0)
    model = models.create("rae-gp", arch="mlp", latent_dim=3, gp_probes=0).double()
    z = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    ours = model.decoder_penalty(z, model.decode_logits(z))
    weight = next(p for p in model.decoder.parameters() if p.dim() > 1)
    (got,) = torch.autograd.grad(ours, weight)
    rows = [
        torch.autograd.functional.jacobian(
            lambda v: model.decode(v[None])[0], row, create_graph=True, vectorize=True
        )
        .pow(2)
        .sum()
        for row in z
    ]
    (expected,) = torch.autograd.grad(torch.stack(rows).mean(), weight)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


def test_the_exact_penalty_is_refused_for_a_batch_norm_decoder() -> None:
    from aebench.models.config import OptionError

    with pytest.raises(OptionError, match="without batch norm"):
        models.create("rae-gp", arch="bench-conv", gp_probes=0)


def test_the_probe_estimate_is_unbiased_for_the_jacobian_norm() -> None:
    """The default one-probe estimate, averaged over 400 draws, is within 4 standard errors
    of the exact value; a single draw is not equal to it (it is an estimate)."""
    torch.manual_seed(0)
    model = models.create("rae-gp", arch="mlp", latent_dim=4).double()
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    z = model.encode(x)
    logits = model.decode_logits(z)
    exact = float(jacobian_norm_sq(torch.sigmoid(logits), z).mean())
    draws = torch.tensor([float(model.decoder_penalty(z, logits)) for _ in range(400)])
    standard_error = float(draws.std()) / 20
    assert abs(float(draws.mean()) - exact) < 4 * standard_error
    assert float(draws.std()) > 0


def test_weight_decay_reaches_only_the_decoders_weights() -> None:
    torch.manual_seed(0)
    model = models.create("rae-l2", arch="conv", latent_dim=4, decoder_weight=0.25)
    model.loss(torch.rand(2, 1, 28, 28))["decoder_penalty"].backward()
    for name, p in model.named_parameters():
        if name.startswith("decoder.") and p.dim() > 1:
            torch.testing.assert_close(p.grad, 2 * p.detach())  # d‖w‖²/dw
        else:
            assert p.grad is None or not p.grad.any(), name  # encoder and biases untouched


def test_loss_adds_the_weighted_code_and_decoder_penalties() -> None:
    """Against a hand computation: per-pixel MSE + β·mean_d(z²) + λ·Σ‖W_dec‖²."""
    torch.manual_seed(0)
    model = models.create("rae-l2", arch="mlp", latent_dim=3, code_weight=0.5,
                          decoder_weight=1e-3)  # fmt: skip
    x = torch.rand(4, 1, 28, 28)
    terms = model.loss(x)
    with torch.no_grad():
        z = model.encode(x)
        mse = (model.decode(z) - x).pow(2).mean()
        weights = sum(float(p.pow(2).sum()) for p in model.decoder.parameters() if p.dim() > 1)
    expected = float(mse) + 0.5 * float(z.pow(2).mean()) + 1e-3 * weights
    assert float(terms["loss"]) == pytest.approx(expected, rel=1e-5)


def test_samples_come_from_the_mixture_fitted_to_the_training_codes(mnist5k) -> None:
    data = subset(mnist5k, 600, 200)
    torch.manual_seed(0)
    model = models.create("rae-l2", arch="mlp", latent_dim=2)
    trainer = Trainer(model, data, TrainConfig(epochs=2, batch_size=100, seed=0, quiet=True))
    trainer.fit()
    codes = trainer.encode_split(data.train_x).double()
    assert float(model.gmm_weights.sum()) == pytest.approx(1.0, abs=1e-6)
    # the mixture keeps the first two moments of the codes it was fitted to (an EM M-step
    # does): Σ πₖ μₖ = E[z] and Σ πₖ (Σₖ + μₖ μₖᵀ) = E[z zᵀ]
    w, means = model.gmm_weights.double(), model.gmm_means.double()
    chol = model.gmm_chol.double()
    scale = float(codes.pow(2).mean())
    torch.testing.assert_close(w @ means, codes.mean(0), rtol=0, atol=1e-4 * scale**0.5)
    second = torch.einsum("k,kij->ij", w, chol @ chol.transpose(1, 2))
    second = second + torch.einsum("k,ki,kj->ij", w, means, means)
    torch.testing.assert_close(second, codes.T @ codes / len(codes), rtol=0, atol=1e-3 * scale)
    images = model.sample(8, torch.Generator().manual_seed(0))
    assert images.shape == (8, 1, 28, 28) and 0 <= float(images.min()) <= float(images.max()) <= 1
