"""Latent-space metrics for models with an approximate posterior q(z|x) and a prior p(z).

They take callables and distributions rather than a model, so any model that can say
``posterior(x) -> torch.distributions.Distribution`` (batch shape (N,), event shape (d,)),
``prior() -> Distribution`` and ``log_likelihood(x, z) -> log p(x|z)`` per image is measured the
same way — a diagonal Gaussian VAE, a flow posterior or a mixture prior alike:

* ``kl``  — KL(q(z|x) ‖ p(z)) in nats per image: closed form where torch.distributions has one
  registered (aebench's diagonal Gaussian to N(0, I) uses the models' own formula), else a
  one-sample Monte Carlo estimate;
* ``elbo`` — E_q[log p(x|z)] − KL, one sample per image;
* ``nll_iw`` — the importance-weighted bound of Burda et al. 2015 with K samples: a tighter
  upper bound on −log p(x) than −ELBO, never looser (NLL_iw(K) ≤ NLL_iw(1) = −ELBO in
  expectation, and non-increasing in K);
* ``iw_gain`` — −ELBO − NLL_iw, both from the same K draws on the same images: how much the
  importance weighting tightens the bound (≥ 0; 0 at K = 1);
* ``active_units`` — Burda et al. 2015: units u with Cov_x(E_q[z_u | x]) > 0.01.

Samples are drawn under a forked RNG seeded from the caller's generator, so every number is
fixed by the evaluation seed and the training RNG stream is never touched. Models without a
posterior get none of these keys (absent, not 0): a 0 would read as a result.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.distributions import Distribution, kl_divergence

from aebench.data import ImageData

Posterior = Callable[[torch.Tensor], Distribution]
LogLikelihood = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

ACTIVE_THRESHOLD = 0.01
#: (image, sample) pairs per decoder call in :func:`iw_bounds`
IW_ROWS_CPU, IW_ROWS_CUDA = 2048, 65536


def _draw(dist: Distribution, shape: tuple[int, ...], gen: torch.Generator | None) -> torch.Tensor:
    """``dist.sample(shape)`` with its randomness taken from ``gen`` (a seed drawn from it
    drives a forked RNG), so the draw is reproducible and the global RNG is left alone."""
    seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device if gen else None))
    device = dist.mean.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return dist.sample(shape)


def kl_per_image(q: Distribution, p: Distribution, z: torch.Tensor) -> torch.Tensor:
    """KL(q ‖ p) per image: the registered closed form, else log q(z) − log p(z) at ``z``."""
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        return q.log_prob(z) - p.log_prob(z)


@torch.no_grad()
def kl_elbo(
    posterior: Posterior,
    prior: Distribution,
    log_likelihood: LogLikelihood,
    images: torch.Tensor,
    batch_size: int = 500,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Mean KL and ELBO per image over uint8 ``images``, in nats."""
    kl_sum = elbo_sum = 0.0
    for start in range(0, images.shape[0], batch_size):
        x = ImageData.batch(images, slice(start, start + batch_size))
        q = posterior(x)
        z = _draw(q, (), generator)
        kl = kl_per_image(q, prior, z)
        kl_sum += float(kl.double().sum())
        elbo_sum += float((log_likelihood(x, z) - kl).double().sum())
    n = max(images.shape[0], 1)
    return kl_sum / n, elbo_sum / n


@torch.no_grad()
def iw_bounds(
    posterior: Posterior,
    prior: Distribution,
    log_likelihood: LogLikelihood,
    images: torch.Tensor,
    k: int = 500,
    generator: torch.Generator | None = None,
    max_rows: int | None = None,
) -> tuple[float, float]:
    """The importance-weighted −log p(x) and −ELBO, both from the same K draws per image of
    uint8 ``images``, means in nats: their difference is what the K samples tighten the bound
    by, free of which images were drawn (the ELBO of the whole test split differs from this
    subset's by more than that gap can be).

    log p(x) ≈ logsumexp_k [log w_k] − log K, log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x),
    z_k ~ q(z|x), and the ELBO is the mean of the log w_k (so NLL_iw ≤ −ELBO on every image).
    Batched over both images and samples: each decoder call sees up to ``max_rows`` (image,
    sample) pairs. On a CPU that is 2,048 by default — a 784-pixel batch of them is 6.4 MB, so
    the elementwise likelihood work stays in cache (1.8× faster than 16,384 rows); with the
    models' autograd-free Bernoulli likelihood, Burda et al.'s protocol (10,000 images × K =
    5,000, their MLP VAE) went from 10 to 3.3 minutes on 2 cores (docs/performance.md). A GPU gets
    65,536: the default goes by ``images``' device, so a caller whose images stay on the host
    while the model runs on a GPU passes :data:`IW_ROWS_CUDA`.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if max_rows is None:
        max_rows = IW_ROWS_CUDA if images.device.type == "cuda" else IW_ROWS_CPU
    n = images.shape[0]
    imgs_per_chunk = max(1, max_rows // k)
    nll = neg_elbo = 0.0
    for start in range(0, n, imgs_per_chunk):
        x = ImageData.batch(images, slice(start, start + imgs_per_chunk))
        b = x.shape[0]
        q = posterior(x)
        log_w = torch.empty(k, b, dtype=torch.float64, device=q.mean.device)
        k_per_call = max(1, max_rows // b)
        for k0 in range(0, k, k_per_call):
            kk = min(k_per_call, k - k0)
            z = _draw(q, (kk,), generator)  # (kk, b, d)
            xs = x.unsqueeze(0).expand(kk, *x.shape).reshape(kk * b, *x.shape[1:])
            log_px = log_likelihood(xs, z.reshape(kk * b, -1)).view(kk, b)
            log_w[k0 : k0 + kk] = (log_px + prior.log_prob(z) - q.log_prob(z)).double()
        nll += float(-(torch.logsumexp(log_w, 0) - math.log(k)).sum())
        neg_elbo += float(-log_w.mean(0).sum())
    return nll / max(n, 1), neg_elbo / max(n, 1)


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
        means.append(posterior(x).mean.double().cpu())
    mu = torch.cat(means)
    if mu.shape[0] < 2:
        return 0
    return int((mu.var(0, unbiased=True) > threshold).sum())
