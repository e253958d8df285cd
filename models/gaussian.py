"""Gaussians in latent space, each written once and shared by models and metrics.

* :func:`fit_gaussian` — the full-covariance Gaussian fitted to a set of codes: a plain AE
  samples from it (Ghosh et al. 2020), and so does the ``gaussian`` evaluation sampler;
* :class:`DiagonalGaussian` and :class:`StandardNormal` — a VAE's q(z|x) and p(z) as
  ``torch.distributions`` objects, which the latent metrics use without assuming their form;
* :class:`GaussianMixture` — a full-covariance mixture fitted by scikit-learn's EM (float64),
  for the ``gmm`` sampler and the RAEs' ex-post density (Ghosh et al. 2020);
* :func:`kl_to_standard_normal` — the closed-form KL between them, used by the VAE losses and,
  registered with ``torch.distributions.kl_divergence``, by the metrics.
"""

from __future__ import annotations

import warnings

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
    """Full-covariance Gaussian mixture fitted by scikit-learn's EM, from k-means++ seeding.

    The authors of the ex-post density (Ghosh et al. 2020) fit theirs with scikit-learn's
    ``GaussianMixture`` (``my_utility/estimate_density_and_sample.py``: 10 full-covariance
    components, its k-means initialisation, EM until the bound improves by less than 1e-3, at
    most 2,000 iterations). aebench runs the same EM (``sklearn.mixture.GaussianMixture``, its
    ``reg_covar`` equal to :data:`COV_JITTER`) with two departures, both so that a run's seed and
    nothing else fixes the fit, at a cost known in advance:
    - the start is plain k-means++ seeding drawn on the run's torch generator, then one
      assignment of each code to its nearest seed (neither scikit-learn's k-means nor its
      greedy ``"k-means++"`` init), and the EM starts from the weights, means and covariances
      of that assignment;
    - a fixed :data:`GMM_ITERATIONS` EM iterations (``tol=0``): no early stop that a last digit
      could move, and the same cost for every model.
    The fitted parameters come back as float64 tensors on the CPU (``weights``, ``means`` and
    the Cholesky factors ``chol`` of the covariances), and :meth:`sample` draws in torch.
    """

    def __init__(self, components: int = GMM_COMPONENTS, iterations: int = GMM_ITERATIONS):
        self.components = components
        self.iterations = iterations

    def fit(self, x: torch.Tensor, generator: torch.Generator | None = None) -> GaussianMixture:
        x = x.detach().double().cpu()  # a fit, not part of any graph
        k = min(self.components, x.shape[0])
        labels = _kmeans_pp_labels(x, k, generator)
        self.weights, self.means, cov = _hard_assignment_parameters(x, labels, k)
        if self.iterations > 0 and x.shape[0] >= 2:  # scikit-learn needs two codes
            self.weights, self.means, cov = _sklearn_em(
                x, self.weights, self.means, cov, self.iterations
            )
        self.chol = torch.linalg.cholesky(cov)
        return self

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        which = torch.multinomial(
            self.weights, n, replacement=True, generator=cpu_generator(generator)
        )
        eps = standard_normal(n, self.means.shape[1], generator)
        return self.means[which] + torch.einsum("nij,nj->ni", self.chol[which], eps)


def _kmeans_pp_labels(x: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """Each row's nearest of ``k`` k-means++ seeds (Arthur & Vassilvitskii 2007): each seed is a
    row drawn with probability ∝ its squared distance to the nearest seed so far."""
    n = x.shape[0]
    centres = x[torch.randint(n, (1,), generator=generator)]
    for _ in range(1, k):
        d2 = torch.cdist(x, centres).min(1).values.pow(2)
        probs = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full((n,), 1.0 / n)
        centres = torch.cat([centres, x[torch.multinomial(probs, 1, generator=generator)]])
    return torch.cdist(x, centres).argmin(1)


def _hard_assignment_parameters(
    x: torch.Tensor, labels: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights, means and (biased, jittered) covariances of the ``k`` groups ``labels`` makes; a
    group left empty by repeated seeds gets a weight of almost nothing, not a division by 0."""
    resp = torch.nn.functional.one_hot(labels, k).double()
    nk = resp.sum(0) + 1e-10
    means = (resp.T @ x) / nk[:, None]
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    cov = torch.stack([
        ((x - m) * r[:, None]).T @ (x - m) / total + COV_JITTER * eye
        for m, r, total in zip(means, resp.T, nk, strict=True)
    ])  # fmt: skip
    return nk / nk.sum(), means, cov


def _sklearn_em(
    x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, cov: torch.Tensor, iterations: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``iterations`` EM steps of scikit-learn's GaussianMixture from the given parameters, on
    as many BLAS threads as torch has (a Ray task's share of a node, not the whole node)."""
    # deferred: scikit-learn pulls in scipy (~1.5 s), needed only where a mixture is fitted
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture as SklearnMixture
    from threadpoolctl import threadpool_limits

    em = SklearnMixture(
        len(weights),
        covariance_type="full",
        tol=0.0,  # never stops early: exactly `iterations` steps
        reg_covar=COV_JITTER,
        max_iter=iterations,
        weights_init=weights.numpy(),
        means_init=means.numpy(),
        precisions_init=_symmetric_inverse(cov).numpy(),
        init_params="random_from_data",  # cheap; overridden by the three *_init above
        random_state=0,
    )
    with threadpool_limits(torch.get_num_threads()), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0 never "converges"
        em.fit(x.numpy())
    return tuple(torch.from_numpy(a) for a in (em.weights_, em.means_, em.covariances_))  # type: ignore[return-value]


def _symmetric_inverse(cov: torch.Tensor) -> torch.Tensor:
    """Σ⁻¹ through Σ's Cholesky factor, made exactly symmetric: scikit-learn refuses a starting
    precision that is not symmetric to 1e-8, which an LU inverse of a nearly singular Σ (a
    component with fewer codes than dimensions) could miss."""
    precision = torch.cholesky_inverse(torch.linalg.cholesky(cov))
    return (precision + precision.mT) / 2


def standard_normal(n: int, d: int, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` draws of N(0, I) in ``d`` dimensions, float64 on the CPU, taken on the generator's
    own device so a CUDA generator gives the same stream as it would anywhere else."""
    where = generator.device if generator is not None else "cpu"
    return torch.randn(n, d, generator=generator, device=where, dtype=torch.float64).cpu()


def cpu_generator(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is None or generator.device.type == "cpu":
        return generator
    return torch.Generator().manual_seed(int(generator.initial_seed()))
