"""Where generated images come from: code samplers, selectable for every model.

* ``prior``    — the model's own ``sample(n, generator)`` (N(0, I) for VAEs);
* ``normal``   — N(0, I) in the latent space, for any model: what a plain AE "can't generate
  anything" from (its codes were never pulled towards it); for a VAE it equals ``prior``;
* ``gaussian`` — a full-covariance Gaussian fitted to the training codes (the natural choice for
  a plain AE, which has no prior);
* ``gmm``      — a 10-component full-covariance Gaussian mixture fitted to the training codes
  (Ghosh et al. 2020, "From variational to deterministic autoencoders"), which often closes
  much of the gap between a VAE's prior and its aggregate posterior.

The mixture is a small EM in torch (float64), so scikit-learn is not a dependency.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from aebench.core.registry import Registry
from aebench.models.gaussian import cholesky_with_jitter, fit_gaussian

GMM_COMPONENTS = 10
GMM_ITERATIONS = 100

#: (model, train-codes thunk, n, generator) -> images in [0, 1]
Sampler = Callable[..., torch.Tensor]
#: sampler name → sampler; plugins add theirs through the entry-point group ``aebench.samplers``
SAMPLERS: Registry[Sampler] = Registry("sampler", "aebench.samplers")


def register_sampler(name: str) -> Callable[[Sampler], Sampler]:
    """Decorator: make ``fn(model, codes, n, generator) -> images`` the sampler ``name``."""
    return SAMPLERS.register(name)  # type: ignore[return-value]


def available() -> list[str]:
    return SAMPLERS.names()


def get(name: str) -> Sampler:
    return SAMPLERS.get(name)


def _standard_normal(n: int, d: int, generator: torch.Generator | None) -> torch.Tensor:
    where = generator.device if generator is not None else "cpu"
    return torch.randn(n, d, generator=generator, device=where, dtype=torch.float64).cpu()


@torch.no_grad()
def _decode(model: torch.nn.Module, z: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    device = next(iter(model.parameters())).device
    parts = [
        model.decode(z[s : s + batch_size].float().to(device)) for s in range(0, len(z), batch_size)
    ]
    return torch.cat(parts)


@register_sampler("prior")
def prior_sampler(
    model: torch.nn.Module,
    codes: Callable[[], torch.Tensor],
    n: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The model's own sampler."""
    with torch.no_grad():
        return torch.cat([model.sample(min(500, n - s), generator) for s in range(0, n, 500)])


@register_sampler("normal")
def normal_sampler(
    model: torch.nn.Module,
    codes: Callable[[], torch.Tensor],
    n: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Decode draws from N(0, I), whatever the model's codes look like."""
    return _decode(model, _standard_normal(n, int(model.latent_dim), generator))


@register_sampler("gaussian")
def gaussian_sampler(
    model: torch.nn.Module,
    codes: Callable[[], torch.Tensor],
    n: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Decode draws from N(mean, cov) of the training codes."""
    mean, chol = fit_gaussian(codes().cpu())
    z = mean + _standard_normal(n, mean.shape[0], generator) @ chol.T
    return _decode(model, z)


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
        diff = x[None] - self.means[:, None]  # (k, n, d)
        cov = torch.einsum("kn,kni,knj->kij", resp.T, diff, diff) / nk[:, None, None]
        self.chol = cholesky_with_jitter(cov)

    def _log_joint(self, x: torch.Tensor) -> torch.Tensor:
        diff = (x[None] - self.means[:, None]).transpose(1, 2)  # (k, d, n)
        sol = torch.linalg.solve_triangular(self.chol, diff, upper=False)
        maha = sol.pow(2).sum(1)  # (k, n)
        logdet = 2 * self.chol.diagonal(dim1=1, dim2=2).log().sum(1)
        d = x.shape[1]
        log_pdf = -0.5 * (maha + logdet[:, None] + d * math.log(2 * math.pi))
        return (log_pdf + self.weights.log()[:, None]).T  # (n, k)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        which = torch.multinomial(self.weights, n, replacement=True, generator=_cpu(generator))
        eps = _standard_normal(n, self.means.shape[1], generator)
        return self.means[which] + torch.einsum("nij,nj->ni", self.chol[which], eps)


def _cpu(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is None or generator.device.type == "cpu":
        return generator
    return torch.Generator().manual_seed(int(generator.initial_seed()))


@register_sampler("gmm")
def gmm_sampler(
    model: torch.nn.Module,
    codes: Callable[[], torch.Tensor],
    n: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Decode draws from a 10-component mixture fitted to the training codes."""
    mixture = GaussianMixture().fit(codes(), _cpu(generator))
    return _decode(model, mixture.sample(n, generator))
