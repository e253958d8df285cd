"""Gaussians in latent space, each written once and shared by models and metrics.

* :func:`fit_gaussian` — the full-covariance Gaussian fitted to a set of codes: a plain AE
  samples from it (Ghosh et al. 2020), and so does the ``gaussian`` evaluation sampler;
* :class:`DiagonalGaussian` and :class:`StandardNormal` — a VAE's q(z|x) and p(z) as
  ``torch.distributions`` objects, which the latent metrics use without assuming their form;
* :func:`kl_to_standard_normal` — the closed-form KL between them, used by the VAE losses and,
  registered with ``torch.distributions.kl_divergence``, by the metrics.
"""

from __future__ import annotations

import torch
from torch.distributions import Independent, Normal, register_kl

#: added to the covariance's diagonal so its Cholesky factor exists even when the codes span
#: fewer dimensions than the latent space (fewer codes than dimensions, dead units)
COV_JITTER = 1e-6


def cholesky_with_jitter(cov: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of ``cov + COV_JITTER · I`` (batched over leading dimensions)."""
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    return torch.linalg.cholesky(cov + COV_JITTER * eye)


def fit_gaussian(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and Cholesky factor of the covariance of ``codes`` (N, D), in float64.

    With a single code the (unbiased) covariance is undefined; it is taken as zero, so samples
    are that code plus the jitter — a tiny image folder still trains and samples.
    """
    c = codes.detach().double()
    d = c.shape[1]
    if c.shape[0] < 2:
        cov = torch.zeros(d, d, dtype=c.dtype, device=c.device)
    else:
        cov = torch.cov(c.T).reshape(d, d)
    return c.mean(0), cholesky_with_jitter(cov)


class DiagonalGaussian(Independent):
    """N(mu, diag(exp(logvar))) over the last dimension: a VAE encoder's q(z|x).

    Keeps ``mu`` and ``logvar`` so that its KL to :class:`StandardNormal` is the closed form
    :func:`kl_to_standard_normal` — the same function the VAE losses use, so the KL a model
    trains on and the KL the latent metrics report are one implementation.
    """

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        base = Normal(mu, (0.5 * logvar).exp(), validate_args=False)
        super().__init__(base, 1, validate_args=False)
        self.mu, self.logvar = mu, logvar


class StandardNormal(Independent):
    """N(0, I) in ``dim`` dimensions: the VAE prior."""

    def __init__(self, dim: int, device: torch.device | str = "cpu") -> None:
        zeros = torch.zeros(dim, device=device)
        base = Normal(zeros, torch.ones_like(zeros), validate_args=False)
        super().__init__(base, 1, validate_args=False)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) ‖ N(0, I)) per row, in nats (closed form)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


@register_kl(DiagonalGaussian, StandardNormal)
def _kl_diagonal_standard(q: DiagonalGaussian, p: StandardNormal) -> torch.Tensor:
    return kl_to_standard_normal(q.mu, q.logvar)
