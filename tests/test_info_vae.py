"""InfoVAE (Zhao et al. 2019): the VAE at α = 0, λ = 0 (λ the MMD's weight), each term weighted
as the paper's eq. 6 says once its λ_paper is mapped to λ = α + λ_paper − 1, and an MMD term that
pulls the aggregate posterior towards the prior."""

from __future__ import annotations

import pytest
import torch

from aebench import models
from aebench.models.config import OptionError
from aebench.models.mmd import mmd_imq


def _pair(**options):
    torch.manual_seed(0)
    info = models.create("info-vae", arch="mlp", latent_dim=3, **options).double()
    vae = models.create("vae", arch="mlp", latent_dim=3).double()
    vae.load_state_dict(info.state_dict())
    return info, vae


def _terms_by_hand(info, x: torch.Tensor, seed: int) -> tuple[torch.Tensor, ...]:
    """recon, KL and MMD² recomputed here from the same posterior draw and prior draws."""
    torch.manual_seed(seed)
    mu, logvar = info.moments(x)
    z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
    mmd = mmd_imq(z, torch.randn_like(z))
    recon = (
        torch.nn.functional.binary_cross_entropy_with_logits(
            info.decode_logits(z), x, reduction="none"
        )
        .flatten(1)
        .sum(1)
        .mean()
    )
    kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)).mean()
    return recon, kl, mmd


def test_alpha_zero_lambda_zero_is_the_vae_objective() -> None:
    """α = 0 and λ = 0: the KL weighted 1 and no MMD, the VAE's loss with the same networks
    and the same posterior draw, to rounding."""
    info, vae = _pair(alpha=0.0, mmd_weight=0.0)
    x = torch.bernoulli(torch.full((8, 1, 28, 28), 0.3, dtype=torch.float64))
    torch.manual_seed(5)
    ours = info.loss(x)
    torch.manual_seed(5)
    theirs = vae.loss(x)
    torch.testing.assert_close(ours["loss"], theirs["loss"], rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(ours["kl"], theirs["kl"])
    assert float(ours["mmd"].detach()) != 0.0  # the term is there, weighted 0


def test_each_term_is_weighted_as_the_papers_eq_6() -> None:
    """The paper's α = 0.5, λ_paper = 40 is λ = α + λ_paper − 1 = 39.5 here: the loss is
    recon + (1 − α)·KL + (α + λ_paper − 1)·MMD², every term recomputed by hand."""
    alpha, lam_paper = 0.5, 40.0
    info, _ = _pair(alpha=alpha, mmd_weight=alpha + lam_paper - 1)
    x = torch.bernoulli(torch.full((16, 1, 28, 28), 0.3, dtype=torch.float64))
    torch.manual_seed(9)
    t = info.loss(x)
    recon, kl, mmd = _terms_by_hand(info, x, seed=9)
    torch.testing.assert_close(t["mmd"], mmd)
    paper = recon + (1 - alpha) * kl + (alpha + lam_paper - 1) * mmd
    torch.testing.assert_close(t["loss"], paper)


def test_options_recorded_with_the_papers_lambda_read_back_as_the_same_weights() -> None:
    """A run recorded before 2026-12-06 holds the paper's λ as ``lam``: read back, its MMD
    weight is α + λ − 1 and every other option is kept."""
    old = {"alpha": 0.5, "lam": 40.0, "latent_dim": 3, "arch": "mlp"}
    assert models.upgrade_options("info-vae", old) == {
        "alpha": 0.5, "mmd_weight": 39.5, "latent_dim": 3, "arch": "mlp"
    }  # fmt: skip
    default = {"alpha": 0.0, "lam": 1000.0}  # what the default run recorded
    assert models.upgrade_options("info-vae", default) == {"alpha": 0.0, "mmd_weight": 999.0}
    assert models.resolved_options("info-vae", {})["mmd_weight"] == 999.0
    assert models.upgrade_options("vae", {"lam": 3}) == {"lam": 3}  # another model's untouched


def test_the_mmd_term_pulls_the_codes_towards_the_prior() -> None:
    """Codes pushed off the prior (the encoder's mean shifted by +3) have a clearly positive
    MMD²; a gradient step on the MMD term alone moves the shift back towards 0."""
    info, _ = _pair()
    x = torch.bernoulli(torch.full((64, 1, 28, 28), 0.3, dtype=torch.float64))
    shift = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    mu, logvar = info.moments(x)
    z = mu.detach() + shift + torch.randn_like(mu) * (0.5 * logvar.detach()).exp()
    mmd = mmd_imq(z, torch.randn_like(z))
    mmd.backward()
    assert float(mmd.detach()) > 0.1 and float(shift.grad) > 0  # descending lowers the shift


def test_a_retired_or_negative_weight_is_refused_in_one_line() -> None:
    """``lam`` (the paper's λ, retired) names what replaced it; a negative MMD weight (which
    would maximise the MMD) and ``beta`` (the KL's weight is 1 − α) are refused."""
    with pytest.raises(OptionError, match=r"no option 'lam'; .*mmd_weight = 999") as err:
        models.create("info-vae", alpha=0.0, lam=0.0)
    assert "\n" not in str(err.value)
    with pytest.raises(OptionError, match="mmd_weight must be >= 0"):
        models.create("info-vae", mmd_weight=-1.0)
    with pytest.raises(OptionError, match="set alpha, not beta"):
        models.create("info-vae", beta=2.0)
