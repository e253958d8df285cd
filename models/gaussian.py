"""The one full-covariance Gaussian fit to a set of codes, shared by models and samplers.

A plain AE samples from a Gaussian fitted to its training codes (Ghosh et al. 2020), and the
``gaussian`` evaluation sampler does the same for any model; both call :func:`fit_gaussian`,
so the two can never differ.
"""

from __future__ import annotations

import torch

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
