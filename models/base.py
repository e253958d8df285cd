"""The contract every model fulfils so that one harness can train and measure it.

A model *declares* what it computes — ``encode``, ``decode``, named loss terms, ``sample`` —
and which parameter groups are updated from which loss term, with which optimizer, schedule,
frequency and order (:class:`Phase`, :class:`Schedule`, ``update_order``); its loss may read the
training :class:`Progress`. It never loops
over data, logs or saves files: that is the harness's job (``aebench.training.trainer``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.distributions import Distribution

#: the optimizers a phase may declare (built by aebench.training.optim)
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
#: the learning-rate schedules a phase may declare, with the arguments each takes
SCHEDULES: dict[str, tuple[str, ...]] = {
    "step": ("step_size", "gamma"),  # lr · gamma^⌊t / step_size⌋
    "multistep": ("milestones", "gamma"),  # lr · gamma^(milestones passed)
    "exponential": ("gamma",),  # lr · gamma^t
    "cosine": ("t_max", "eta_min"),  # eta_min + (lr − eta_min)(1 + cos(π t / t_max)) / 2
    "warmup": ("steps", "start_factor"),  # linear from start_factor·lr to lr over `steps`
}


#: the families the report groups models by, in its order (``GenerativeAutoencoder.family``)
FAMILIES = ("deterministic AE", "VAE", "adversarial", "two-stage", "discrete")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule, declared: its ``kind`` (a key of :data:`SCHEDULES`) and
    arguments, counted in the phase's own optimizer steps (``per="step"``) or in epochs
    (``per="epoch"``, stepped when an epoch ends). ``Schedule("step", step_size=10, gamma=0.5)``.
    """

    kind: str
    per: str = "step"
    step_size: int = 1
    gamma: float = 0.1
    milestones: tuple[int, ...] = ()
    t_max: int = 1
    eta_min: float = 0.0
    steps: int = 1
    start_factor: float = 0.1


@dataclass
class Phase:
    """One optimizer's worth of an update step: which parameters, moved by which loss term,
    with which optimizer, schedule and frequency.

    The model's :attr:`GenerativeAutoencoder.update_order` says how phases meet on a batch:
    *simultaneous* (one forward pass; each phase's gradient of its own ``loss_key`` with respect
    to its own ``params`` is taken before any weight changes, so phases never see each other's
    half-updated weights) or *sequential* (each phase in turn runs its own forward pass, on the
    weights the previous phase left, and steps).

    ``every = k`` steps the phase only on every k-th training step (steps 0, k, 2k, …): a
    generator with ``every = n`` beside a critic with ``every = 1`` gives the n-critic ratio of
    WGAN training (in the sequential order, only for a phase without its own ``terms``).
    ``terms`` is the forward a phase runs in the sequential order (default: the model's
    :meth:`~GenerativeAutoencoder.loss`), so a discriminator phase need not compute the whole
    model's loss.
    """

    name: str
    params: list[nn.Parameter]
    loss_key: str = "loss"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    optimizer: str = "adam"  #: one of :data:`OPTIMIZERS`
    momentum: float = 0.0  #: for ``sgd`` and ``rmsprop``
    schedule: Schedule | None = None
    every: int = 1
    terms: Callable[[torch.Tensor], dict[str, torch.Tensor]] | None = None


@dataclass
class Stage:
    """A further training stage, after the model's own: ``module`` (a submodule of the model
    with its own ``loss`` and ``phases``, e.g. a learned prior over the codes or a second VAE on
    them) is trained by the same harness on ``inputs(x)`` of each batch of images (computed
    without gradients, the earlier stages frozen), for ``budget`` times the run's budget.

    Each stage has its own phases, seed stream, checkpoint, resume, history rows and progress
    bar; the whole model is saved once every stage has finished."""

    name: str
    module: nn.Module
    inputs: Callable[[torch.Tensor], torch.Tensor]
    budget: float = 1.0


@dataclass(frozen=True)
class Progress:
    """Where training stands, visible to the loss (``self.progress`` in a model): the number
    of optimizer steps taken, the epoch (1-based; 0 before training), the fraction of the
    training budget spent, in [0, 1], and the training set's size (β-TCVAE's estimate of q(z)
    needs it; 0 when unknown). The harness sets it before every step; outside training it
    reads as finished (``fraction = 1``), so a loaded model computes its final loss."""

    step: int = 0
    epoch: int = 0
    fraction: float = 1.0
    train_size: int = 0


@torch.no_grad()
def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Σ over pixels of log Bernoulli(x | sigmoid(l)) per image, without autograd, 3-4× faster
    than ``binary_cross_entropy_with_logits`` on a CPU (its log1p is not vectorised there).

    log p = x·l − softplus(l), and softplus(l) = relu(l) − log σ(|l|), with σ(|l|) ∈ [½, 1]
    so its log never underflows (absolute error below 1e-7 per pixel); relu's sum is
    (Σ l + Σ |l|) / 2. In float32 the sums of ±l cancel to ~1e-3 nats per image, as
    BCE-with-logits' own float32 sum does (tested against both in float64); no autograd
    (``recon_nll`` uses it only when no gradient is wanted). Evaluation calls it K × N times
    for the importance-weighted NLL, where this elementwise work, not the decoder's matmuls,
    was half of the time.
    """
    lg, x = logits.flatten(1), x.flatten(1).to(logits.dtype)
    a = lg.abs()
    linear = (x * lg).sum(1) - 0.5 * (lg.sum(1) + a.sum(1))
    return linear + torch.sigmoid_(a).log_().sum(1)


def recon_nll(logits: torch.Tensor, x: torch.Tensor, kind: str, sigma: float) -> torch.Tensor:
    """Per-image negative log-likelihood of ``x`` under the decoder's output, in nats.

    ``bce``: Bernoulli with ``sigmoid(logits)`` as means (the usual choice on [0, 1] pixels);
    without gradients, through :func:`bernoulli_log_likelihood`.
    ``mse``: Gaussian with mean ``sigmoid(logits)`` and fixed ``sigma``, normalising constant
    included so that ELBO-based bounds stay true bounds.
    """
    if kind == "bce":
        if not (torch.is_grad_enabled() and logits.requires_grad):
            return -bernoulli_log_likelihood(logits, x)
        nll = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
        return nll.flatten(1).sum(1)
    if kind == "mse":
        sq = (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)
        d = x[0].numel()
        log_norm = d * (
            torch.log(torch.tensor(sigma)) + 0.5 * torch.log(torch.tensor(2 * torch.pi))
        )
        return 0.5 * sq / sigma**2 + log_norm.to(sq)
    raise ValueError(f"unknown reconstruction term {kind!r}; choose 'bce' or 'mse'")


class GenerativeAutoencoder(nn.Module):
    """Base class: an encoder, a decoder and a way to sample.

    Subclasses set ``self.latent_dim`` (or override :attr:`code_shape` for codes that are not
    flat) and implement :meth:`encode`, :meth:`decode_logits`, :meth:`loss` and :meth:`sample`.
    ``config`` holds the JSON-serialisable constructor arguments, so
    ``models.create(name, **config)`` rebuilds the same network on load.
    """

    latent_dim: int
    #: which of :data:`FAMILIES` the model belongs to ("" when it does not say: a plugin's)
    family: ClassVar[str] = ""
    #: True when the model has an approximate posterior q(z|x) and a prior p(z) (enables the
    #: KL/ELBO/IW-NLL metrics through :meth:`posterior`, :meth:`prior`, :meth:`log_likelihood`).
    has_posterior: bool = False
    #: True when sampling needs a code distribution fitted after training (see :meth:`fit_prior`).
    fits_prior: bool = False
    #: the sampler generation metrics use unless told otherwise (``aebench.metrics.samplers``)
    default_sampler: ClassVar[str] = "gaussian"
    #: every sampler the model is evaluated with (generation metrics ``fid@NAME``, ...): the
    #: fitted Gaussian, N(0, I) and a 10-component GMM on the codes (Ghosh et al. 2020, Table 1)
    samplers: ClassVar[tuple[str, ...]] = ("gaussian", "normal", "gmm")
    #: the backbones (``arch``) the model can be built on; None: every one. A suite's grid
    #: leaves out the pairs a model cannot train on and says so (VQ-VAE's grid code: conv only)
    archs: ClassVar[tuple[str, ...] | None] = None
    #: how the phases meet on a batch: "simultaneous" (one forward pass) or "sequential"
    update_order: ClassVar[str] = "simultaneous"
    #: how many batches of the run's batch size one training step consumes: the harness hands
    #: the model their concatenation (FactorVAE trains its discriminator on a second,
    #: independent batch, Kim & Mnih 2018, Algorithm 2), and an epoch's budget counts them all
    batches_per_step: ClassVar[int] = 1
    #: True when a loss term needs autograd itself (a gradient penalty): the harness then
    #: evaluates the loss with gradients enabled instead of under inference mode
    loss_needs_grad: ClassVar[bool] = False
    #: the training progress the loss may read (set by the harness before every step)
    progress: Progress = Progress()

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(config)

    @property
    def code_shape(self) -> tuple[int, ...]:
        """The shape of one image's code: ``(latent_dim,)`` for a flat code (the default), or
        e.g. ``(channels, height, width)`` for a spatial grid (VQ-VAE). Samplers and figures
        that need flat codes check it and say when they do not apply."""
        return (int(self.latent_dim),)

    # -- what the model computes -------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic codes for images ``x`` (the posterior mean for VAEs)."""
        raise NotImplementedError

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output before the sigmoid."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] for codes ``z``."""
        return torch.sigmoid(self.decode_logits(z))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``: the deterministic reconstruction."""
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named scalar loss terms for a batch; must include ``"loss"``."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` generated images in [0, 1]."""
        raise NotImplementedError

    # -- optional capabilities ---------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> Distribution:
        """q(z|x) as a ``torch.distributions`` object (batch shape (N,), event shape
        (latent_dim,)); only for models with ``has_posterior``."""
        raise NotImplementedError(f"{type(self).__name__} has no approximate posterior")

    def prior(self) -> Distribution:
        """p(z) as a ``torch.distributions`` object; only for models with ``has_posterior``."""
        raise NotImplementedError(f"{type(self).__name__} has no prior")

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per image, in nats; only for models with ``has_posterior``."""
        raise NotImplementedError(f"{type(self).__name__} has no decoder likelihood")

    @property
    def decodes_per_image(self) -> int:
        """How many codes per training image one step decodes: 1 here, K for a model trained
        on an importance-weighted bound. The run planner weighs a step's cost by it, so a
        suite's slowest runs start first without running the model in the driver."""
        return 1

    def fit_prior(self, codes: torch.Tensor) -> None:
        """Fit the sampling distribution to training codes (called by the harness if
        ``fits_prior``)."""

    def phases(self) -> list[Phase]:
        """The update phases; by default one Adam on ``"loss"`` over every parameter that no
        later :class:`Stage` trains."""
        later = {id(p) for stage in self.stages() for p in stage.module.parameters()}
        return [Phase("model", [p for p in self.parameters() if id(p) not in later], "loss")]

    def stages(self) -> list[Stage]:
        """Training stages after the model's own (none by default). Closed-form fits that need
        no training stay in :meth:`fit_prior`."""
        return []

    def budget_plans(self) -> list[str]:
        """What the loss plans on the share of the budget spent (``progress.fraction``), named
        for a message, e.g. ``["a KL warm-up"]``; none by default. A run that plans on its
        budget cannot be extended by resuming it with a larger budget (the plan would move)."""
        return []

    @staticmethod
    def _device_of(params: Iterable[torch.Tensor]) -> torch.device:
        for p in params:
            return p.device
        return torch.device("cpu")

    @property
    def device(self) -> torch.device:
        return self._device_of(self.parameters())

    def gaussian_samples(
        self,
        mean: torch.Tensor,
        chol: torch.Tensor | None,
        n: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Decode ``n`` draws from N(mean, chol·cholᵀ) (identity when ``chol`` is None)."""
        where = generator.device if generator is not None else mean.device
        eps = torch.randn(n, self.latent_dim, generator=generator, device=where).to(mean.device)
        z = mean + (eps if chol is None else eps @ chol.T)
        return self.decode(z)

    def isotropic_samples(
        self, sigma: float, n: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Decode ``n`` draws from the prior N(0, σ²I) (the WAEs' and the AAE's sampler)."""
        mean = torch.zeros(self.latent_dim, device=self.device)
        chol = sigma * torch.eye(self.latent_dim, device=self.device)
        return self.gaussian_samples(mean, chol, n, generator)
