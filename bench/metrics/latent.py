"""Latent-space metrics for models with an approximate posterior q(z|x) = N(mu, diag(exp(logvar))).

They take two callables rather than a model, so any model that can say ``posterior(x) ->
(mu, logvar)`` and ``log_likelihood(x, z) -> log p(x|z)`` per image is measured the same way:

* ``kl``  — KL(q(z|x) ‖ N(0, I)) in nats per image (closed form);
* ``elbo`` — E_q[log p(x|z)] − KL, one reparameterised sample per image;
* ``nll_iw`` — the importance-weighted bound of Burda et al. 2015 with K samples: a tighter
  upper bound on −log p(x) than −ELBO, never looser (NLL_iw(K) ≤ NLL_iw(1) = −ELBO in
  expectation, and non-increasing in K);
* ``active_units`` — Burda et al. 2015: units u with Cov_x(E_q[z_u | x]) > 0.01.

Models without a posterior get none of these keys (absent, not 0): a 0 would read as a result.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from bench.data import ImageData

Posterior = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
LogLikelihood = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

LOG_2PI = math.log(2 * math.pi)
ACTIVE_THRESHOLD = 0.01


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) ‖ N(0, I)) per row, in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def _randn(shape: tuple[int, ...], like: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    where = gen.device if gen is not None else like.device
    return torch.randn(shape, generator=gen, device=where, dtype=like.dtype).to(like.device)


@torch.no_grad()
def kl_elbo(
    posterior: Posterior,
    log_likelihood: LogLikelihood,
    images: torch.Tensor,
    batch_size: int = 500,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Mean KL and ELBO per image over uint8 ``images``, in nats."""
    kl_sum = elbo_sum = 0.0
    for start in range(0, images.shape[0], batch_size):
        x = ImageData.batch(images, slice(start, start + batch_size))
        mu, logvar = posterior(x)
        z = mu + _randn(tuple(mu.shape), mu, generator) * (0.5 * logvar).exp()
        kl = gaussian_kl(mu, logvar)
        kl_sum += float(kl.double().sum())
        elbo_sum += float((log_likelihood(x, z) - kl).double().sum())
    n = max(images.shape[0], 1)
    return kl_sum / n, elbo_sum / n


@torch.no_grad()
def nll_iw(
    posterior: Posterior,
    log_likelihood: LogLikelihood,
    images: torch.Tensor,
    k: int = 500,
    generator: torch.Generator | None = None,
    max_rows: int = 16384,
) -> float:
    """Importance-weighted estimate of −log p(x), mean over uint8 ``images``, in nats.

    log p(x) ≈ logsumexp_k [log p(x|z_k) + log p(z_k) − log q(z_k|x)] − log K, z_k ~ q(z|x).
    Batched over both images and samples: each decoder call sees up to ``max_rows`` (image,
    sample) pairs, which keeps 1,000 images × K = 500 to seconds for an MLP on a CPU.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = images.shape[0]
    imgs_per_chunk = max(1, max_rows // k)
    total = 0.0
    for start in range(0, n, imgs_per_chunk):
        x = ImageData.batch(images, slice(start, start + imgs_per_chunk))
        b = x.shape[0]
        mu, logvar = posterior(x)
        std = (0.5 * logvar).exp()
        log_w = torch.empty(k, b, dtype=torch.float64, device=mu.device)
        k_per_call = max(1, max_rows // b)
        for k0 in range(0, k, k_per_call):
            kk = min(k_per_call, k - k0)
            eps = _randn((kk, *mu.shape), mu, generator)
            z = mu + eps * std  # (kk, b, d)
            log_q = -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(-1)
            log_p = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
            xs = x.unsqueeze(0).expand(kk, *x.shape).reshape(kk * b, *x.shape[1:])
            log_px = log_likelihood(xs, z.reshape(kk * b, -1)).view(kk, b)
            log_w[k0 : k0 + kk] = (log_px + log_p - log_q).double()
        log_px_hat = torch.logsumexp(log_w, 0) - math.log(k)
        total += float(-log_px_hat.sum())
    return total / max(n, 1)


@torch.no_grad()
def active_units(
    posterior: Posterior,
    images: torch.Tensor,
    threshold: float = ACTIVE_THRESHOLD,
    batch_size: int = 500,
) -> int:
    """How many latent units' posterior means vary across the data by more than ``threshold``
    (variance over x of E_q[z_u|x]); collapsed units carry no information about x."""
    means = []
    for start in range(0, images.shape[0], batch_size):
        x = ImageData.batch(images, slice(start, start + batch_size))
        means.append(posterior(x)[0].double().cpu())
    mu = torch.cat(means)
    if mu.shape[0] < 2:
        return 0
    return int((mu.var(0, unbiased=True) > threshold).sum())
