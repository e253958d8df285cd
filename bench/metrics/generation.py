"""Distribution metrics between real and generated images, all in one feature space.

Features are extracted once per image set (:func:`aebench.metrics.features.extract`) and every
metric of a call reads the same tensors, so FID, KID, precision/recall and density/coverage
can never disagree about what they compared:

* ``fid`` / ``kid_mean`` / ``kid_std`` — torchmetrics' FID and KID, fed the precomputed features
  through a pass-through ``feature`` module (their statistics run in float64);
* ``precision`` / ``recall`` — Kynkäänniemi et al. 2019: a fake is "precise" if it falls inside
  the k-NN ball of some real feature, a real is "recalled" if it falls inside some fake's ball;
* ``density`` / ``coverage`` — Naeem et al. 2020: density counts how many real balls contain each
  fake (divided by k, so ≈ 1 for matching distributions), coverage the share of real points
  whose own ball contains at least one fake.

The four k-NN metrics are aebench's own code because they share one thing no library computes
once for all four: the real set's k-NN radii, found in row blocks on the evaluation's device.
torch-fidelity has precision/recall alone (``metric_prc``), and the tests check aebench's
against it, to the point counted; density/coverage has no maintained implementation (the authors'
``prdc`` 0.2, NumPy with full distance matrices, counts a point on a ball's boundary as outside,
``<``, where aebench, torch-fidelity and Kynkäänniemi et al.'s code count it inside, ``<=``; the
two differ only on exact ties, such as a memorised training image). One k for all four,
:data:`~aebench.metrics.constants.K_NEAREST` = 5, as Naeem et al. compute them together;
Kynkäänniemi et al. use k = 3 for precision/recall (torch-fidelity's default too), so with
k = 5 each ball is a little larger and both read somewhat higher than at k = 3.

**Memory.** Every one of these needs the whole generated set at once: KID and the k-NN metrics
compare each generated feature with every other, so they cannot be accumulated in chunks the
way FID's mean and covariance could. An evaluation therefore holds the generated images of
each sampler, their features and one block of k-NN distances (:data:`KNN_CHUNK` rows × the set
size), and :func:`check_sample_memory` refuses, before anything is generated, an ``n_samples``
whose estimate (:func:`generation_memory`) exceeds :data:`MAX_GENERATION_BYTES`, naming what
it would need and the largest ``n_samples`` that fits. The same estimate is made earlier where
it can be: without the images as options come in
(:func:`aebench.metrics.options.check_n_samples`), and with them before a run trains
(:func:`aebench.metrics.evaluation.planned_memory_problem`), so a suite is not refused only after
hours of training. Refusing is preferred to chunking here:
chunked generation would still end in the same all-pairs comparison.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from aebench.core.errors import UsageError
from aebench.metrics.constants import K_NEAREST, KID_SUBSET_SIZE, KID_SUBSETS
from aebench.metrics.features import feature_width

#: rows of the k-NN distance matrix computed at a time (float64, × the size of the other set)
KNN_CHUNK = 2048
#: the most memory one evaluation's generated sets may need (:func:`generation_memory`): far
#: above the default 10,000 samples (under 1.5 GiB even for CIFAR-10 with Inception features)
MAX_GENERATION_BYTES = 8 * 2**30
#: metric families that draw generated images (the others never allocate a generated set)
SAMPLING_FAMILIES = ("generation", "sharpness")


class _Precomputed(nn.Module):
    """The identity, posing as torchmetrics' feature extractor: ``update`` receives features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _check(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature shapes differ: {tuple(real.shape)} vs {tuple(fake.shape)}")
    if real.shape[0] < 2 or fake.shape[0] < 2:
        raise ValueError("need at least two real and two generated feature vectors")


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (float64 throughout)."""
    from torchmetrics.image.fid import FrechetInceptionDistance  # deferred: ~5 s to import

    _check(real, fake)
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]))
    metric.update(real.double().cpu(), real=True)
    metric.update(fake.double().cpu(), real=False)
    return float(metric.compute())


def kid(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance (cubic polynomial MMD²): mean and std over random subsets.

    ``subset_size`` is capped at half the smaller set, so that subsets differ and the std
    means something (with subsets as large as the sets, every subset is the whole set and the
    std is 0); subsets are drawn under a fixed ``seed`` (in a
    forked RNG, leaving the caller's stream untouched) so repeated evaluations agree.
    """
    from torchmetrics.image.kid import KernelInceptionDistance  # deferred: ~5 s to import

    _check(real, fake)
    size = min(subset_size, max(2, min(real.shape[0], fake.shape[0]) // 2))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(
            feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=size
        )
    metric.update(real.double().cpu(), real=True)
    metric.update(fake.double().cpu(), real=False)
    with torch.random.fork_rng(devices=[]):
        # the CPU generator only: torch.manual_seed would also reseed every GPU's stream,
        # which fork_rng(devices=[]) does not restore
        torch.default_generator.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def _rowwise(
    a: torch.Tensor,
    b: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    chunk: int = KNN_CHUNK,
) -> torch.Tensor:
    """``fn`` applied to the distance matrix ``cdist(a, b)`` a block of rows at a time, so
    10k × 10k comparisons never hold the whole matrix in float64."""
    return torch.cat([fn(torch.cdist(a[s : s + chunk], b)) for s in range(0, a.shape[0], chunk)])


def knn_radii(features: torch.Tensor, k: int = K_NEAREST, chunk: int = KNN_CHUNK) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (self excluded)."""
    if features.shape[0] <= k:
        raise ValueError(f"need more than k={k} points for k-NN radii, got {features.shape[0]}")
    f = features.double()
    return _rowwise(f, f, lambda d: d.topk(k + 1, dim=1, largest=False).values[:, k], chunk)


def _ball_counts(
    points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = KNN_CHUNK
) -> torch.Tensor:
    """For each point, how many balls (centre, radius) contain it."""
    return _rowwise(
        points.double(), centres.double(), lambda d: (d <= radii[None, :]).sum(1), chunk
    )


def precision_recall(
    real: torch.Tensor, fake: torch.Tensor, k: int = K_NEAREST
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls."""
    _check(real, fake)
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    precision = (_ball_counts(fake, real, r_real) > 0).double().mean()
    recall = (_ball_counts(real, fake, r_fake) > 0).double().mean()
    return float(precision), float(recall)


def density_coverage(
    real: torch.Tensor, fake: torch.Tensor, k: int = K_NEAREST
) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020), both built on the real k-NN balls only."""
    _check(real, fake)
    r_real = knn_radii(real, k)
    density = _ball_counts(fake, real, r_real).double().sum() / (k * fake.shape[0])
    f = fake.double()
    nearest_fake = _rowwise(real.double(), f, lambda d: d.min(1).values)
    coverage = (nearest_fake <= r_real).double().mean()
    return float(density), float(coverage)


def generation_metrics(
    real: torch.Tensor,
    fake: torch.Tensor,
    k: int = K_NEAREST,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
    suffix: str = "",
) -> dict[str, float]:
    """All generation metrics of one (real, fake) feature pair, keys ending in ``suffix``."""
    kid_mean, kid_std = kid(real, fake, kid_subsets, kid_subset_size, seed)
    precision, recall = precision_recall(real, fake, k)
    density, coverage = density_coverage(real, fake, k)
    values = {
        "fid": fid(real, fake),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
    }
    return {f"{name}{suffix}": v for name, v in values.items()}


# -- memory, checked before anything is generated -----------------------------------------------
def generation_memory(
    n_samples: int,
    n_features: int,
    image_shape: Sequence[int] | None = None,
    n_samplers: int = 1,
) -> int:
    """Bytes an evaluation with ``n_samples`` generated images needs at its peak: the images of
    each of ``n_samplers`` samplers (float32 of ``image_shape``, kept for every family that reads
    them; left out when the shape is not known yet), two copies of one set's float64 features
    (the batches and their concatenation) and two float64 blocks of :data:`KNN_CHUNK` ×
    ``n_samples`` k-NN distances (``cdist`` and its temporaries)."""
    images = n_samplers * n_samples * 4 * math.prod(image_shape) if image_shape else 0
    return images + 2 * n_samples * n_features * 8 + 2 * KNN_CHUNK * n_samples * 8


def memory_problem(
    n_samples: int,
    n_features: int,
    image_shape: Sequence[int] | None = None,
    n_samplers: int = 1,
) -> str | None:
    """Why ``n_samples`` is too many (one line naming the memory, the limit and the largest
    count that fits), or None when :func:`generation_memory` is within the limit."""
    need = generation_memory(n_samples, n_features, image_shape, n_samplers)
    if need <= MAX_GENERATION_BYTES:
        return None
    fits = MAX_GENERATION_BYTES // max(1, generation_memory(1, n_features, image_shape, n_samplers))
    shape = "x".join(map(str, image_shape or ()))
    what = (
        f"{n_samplers} sampler(s)' {shape} images, their {n_features}-d features"
        if shape
        else f"{n_features}-d features of the generated images"
    )
    return (
        f"n_samples = {n_samples:,} needs about {need / 2**30:,.1f} GiB of memory ({what} and "
        f"the k-NN distances); the limit is {MAX_GENERATION_BYTES / 2**30:g} GiB, so use at "
        f"most n_samples = {fits:,}"
    )


def sample_memory_problem(
    options: Any,
    image_shape: Sequence[int],
    n_samplers: int,
    device: Any,
    n_test: int | None = None,
) -> str | None:
    """:func:`memory_problem` of an evaluation with ``options`` (a
    :class:`~aebench.metrics.options.MetricOptions`) of ``n_samplers`` samplers on images of
    ``image_shape`` on ``device`` (a ``torch.device``: the default ``n_samples`` depends on it,
    and on ``n_test``, the test split's size, when known); None when it fits or no family
    that draws samples is asked for."""
    if not set(SAMPLING_FAMILIES) & set(options.families or ()):
        return None
    n_samples = options.resolved_n_samples(device, n_test)
    return memory_problem(n_samples, feature_width(options.backbone), image_shape, n_samplers)


def check_sample_memory(ctx: Any) -> None:
    """Refuse, as one :class:`UsageError` line, an evaluation (an
    :class:`~aebench.metrics.context.EvalContext`) whose generated sets would not fit
    :data:`MAX_GENERATION_BYTES`; only families that draw samples count."""
    problem = sample_memory_problem(
        ctx.options, ctx.data.image_shape, len(ctx.samplers()), ctx.device, ctx.test.shape[0]
    )
    if problem:
        raise UsageError(problem)
