"""Gaussians in latent space, each written once and shared by models and metrics.

* :func:`fit_gaussian` — the full-covariance Gaussian fitted to a set of codes: a plain AE
  samples from it (Ghosh et al. 2020), and so does the ``gaussian`` evaluation sampler;
* :class:`DiagonalGaussian` and :class:`StandardNormal` — a VAE's q(z|x) and p(z) as
  ``torch.distributions`` objects, which the latent metrics use without assuming their form;
* :class:`GaussianMixture` — a full-covariance mixture fitted by EM, for the ``gmm`` sampler
  and the RAEs' ex-post density (Ghosh et al. 2020); a small EM in torch (float64);
* :func:`kl_to_standard_normal` — the closed-form KL between them, used by the VAE losses and,
  registered with ``torch.distributions.kl_divergence``, by the metrics.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Independent, Normal, register_kl

#: the mixture the ``gmm`` sampler and the RAEs fit to the codes (Ghosh et al. 2020)
GMM_COMPONENTS = 10
GMM_ITERATIONS = 100

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


class GaussianMixture:
    """Full-covariance Gaussian mixture fitted by EM, initialised with k-means++ seeding."""

    def __init__(self, components: int = GMM_COMPONENTS, iterations: int = GMM_ITERATIONS):
        self.components = components
        self.iterations = iterations

    def fit(self, x: torch.Tensor, generator: torch.Generator | None = None) -> GaussianMixture:
        x = x.detach().double().cpu()  # a fit, not part of any graph
        n = x.shape[0]
        k = min(self.components, n)
        centres = x[torch.randint(n, (1,), generator=generator)]
        for _ in range(1, k):  # k-means++: next centre ∝ squared distance to the nearest one
            d2 = torch.cdist(x, centres).min(1).values.pow(2)
            probs = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full((n,), 1.0 / n)
            centres = torch.cat([centres, x[torch.multinomial(probs, 1, generator=generator)]])
        resp = torch.nn.functional.one_hot(torch.cdist(x, centres).argmin(1), k).double()
        for _ in range(self.iterations):
            self._m_step(x, resp)
            log_r = self._log_joint(x)
            resp = (log_r - torch.logsumexp(log_r, 1, keepdim=True)).exp()
        self._m_step(x, resp)
        return self

    def _m_step(self, x: torch.Tensor, resp: torch.Tensor) -> None:
        nk = resp.sum(0) + 1e-10
        self.weights = nk / nk.sum()
        self.means = (resp.T @ x) / nk[:, None]
        # one component at a time: an (n, d) matrix product each, never a (k, n, d) tensor
        parts = zip(self.means, resp.T, nk, strict=True)
        cov = torch.stack([_weighted_cov(x - mean, r) / total for mean, r, total in parts])
        self.chol = cholesky_with_jitter(cov)

    def _log_joint(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[1]
        eye = torch.eye(d, dtype=x.dtype, device=x.device).expand_as(self.chol)
        whiten = torch.linalg.solve_triangular(self.chol, eye, upper=False)  # L⁻¹ per component
        # Mahalanobis distance as ‖L⁻¹(x − μ)‖²: a matrix product per component
        maha = torch.stack([
            ((x - mean) @ w.T).pow(2).sum(1) for mean, w in zip(self.means, whiten, strict=True)
        ])  # (k, n)  # fmt: skip
        logdet = 2 * self.chol.diagonal(dim1=1, dim2=2).log().sum(1)
        log_pdf = -0.5 * (maha + logdet[:, None] + d * math.log(2 * math.pi))
        return (log_pdf + self.weights.log()[:, None]).T  # (n, k)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        which = torch.multinomial(
            self.weights, n, replacement=True, generator=cpu_generator(generator)
        )
        eps = standard_normal(n, self.means.shape[1], generator)
        return self.means[which] + torch.einsum("nij,nj->ni", self.chol[which], eps)


def _weighted_cov(diff: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σₙ wₙ · diffₙ diffₙᵀ for ``diff`` (n, d) and ``weights`` (n,)."""
    return (diff * weights[:, None]).T @ diff


def standard_normal(n: int, d: int, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` draws of N(0, I) in ``d`` dimensions, float64 on the CPU, taken on the generator's
    own device so a CUDA generator gives the same stream as it would anywhere else."""
    where = generator.device if generator is not None else "cpu"
    return torch.randn(n, d, generator=generator, device=where, dtype=torch.float64).cpu()


def cpu_generator(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is None or generator.device.type == "cpu":
        return generator
    return torch.Generator().manual_seed(int(generator.initial_seed()))
