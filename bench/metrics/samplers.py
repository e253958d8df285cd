"""Where generated images come from: code samplers, selectable for every model.

* ``prior``    — the model's own ``sample(n, generator)`` (N(0, I) for VAEs);
* ``normal``   — N(0, I) in the latent space, for any model: what a plain AE "can't generate
  anything" from (its codes were never pulled towards it); for a VAE it equals ``prior``;
* ``gaussian`` — a full-covariance Gaussian fitted to the training codes (the natural choice for
  a plain AE, which has no prior);
* ``gmm``      — a 10-component full-covariance Gaussian mixture fitted to the training codes
  (Ghosh et al. 2020, "From variational to deterministic autoencoders"), which often closes
  much of the gap between a VAE's prior and its aggregate posterior;
* ``uniform-codes`` — for models with a discrete codebook (VQ-VAE): grids of independent,
  uniformly drawn codes, the ablation of a learned prior over them.

The mixture (:class:`~aebench.models.gaussian.GaussianMixture`) is scikit-learn's EM in float64,
a fixed 100 iterations from k-means++ seeding on the run's torch generator.

Like a metric family, each sampler says which models it **applies to**, by capability: the
fitted ``gaussian`` and ``gmm`` need flat codes (``code_shape`` of one dimension), ``prior``
needs a model that implements ``sample``. A model may declare only samplers that apply to it
(the model contract tests check every registered model), and a sampler a user names for a
model it cannot serve is refused in one line (:func:`problem`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from aebench.core.errors import UsageError
from aebench.core.registry import Registry
from aebench.models.base import GenerativeAutoencoder
from aebench.models.gaussian import (
    GaussianMixture,
    cpu_generator,
    fit_gaussian,
    standard_normal,
)

#: (model, train-codes thunk, n, generator) -> images in [0, 1]
Draw = Callable[..., torch.Tensor]
#: what a sampler needs of a model: None when it applies, else why not (one line)
Check = Callable[[torch.nn.Module], "str | None"]


def code_shape(model: torch.nn.Module) -> tuple[int, ...]:
    """The shape of one image's code: the model's ``code_shape``, else ``(latent_dim,)``."""
    shape = getattr(model, "code_shape", None)
    return tuple(shape) if shape is not None else (int(model.latent_dim),)


def needs_flat_codes(model: torch.nn.Module) -> str | None:
    shape = code_shape(model)
    return None if len(shape) == 1 else f"needs flat codes, and its codes have shape {shape}"


def needs_own_sampler(model: torch.nn.Module) -> str | None:
    if isinstance(model, GenerativeAutoencoder) and (
        type(model).sample is GenerativeAutoencoder.sample
    ):
        return "needs a model that implements sample(), and this one does not"
    return None


def any_model(model: torch.nn.Module) -> str | None:
    return None


class Sampler:
    """A registered code sampler: how it draws (``draw``) and what it needs (``check``)."""

    def __init__(self, draw: Draw, check: Check = any_model, name: str | None = None) -> None:
        self.draw = draw
        self.check = check
        self.name = name or getattr(draw, "__name__", "sampler")
        self.__doc__ = draw.__doc__

    def __call__(self, model: torch.nn.Module, codes: Callable[[], torch.Tensor], n: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        images = self.draw(model, codes, n, generator)
        if not isinstance(images, torch.Tensor) or images.shape[:1] != (n,):
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise UsageError(f"sampler {self.name!r} returned {got}, not a tensor of {n} images")
        return images

    def applies_to(self, model: torch.nn.Module) -> bool:
        return self.check(model) is None


#: sampler name → sampler; plugins add theirs through the entry-point group ``aebench.samplers``
#: (a plain function there is a sampler that applies to every model)
SAMPLERS: Registry[Sampler] = Registry(
    "sampler",
    "aebench.samplers",
    from_entry_point=lambda obj: obj if isinstance(obj, Sampler) else Sampler(obj),
)


def register_sampler(name: str, check: Check = any_model) -> Callable[[Draw], Draw]:
    """Decorator: make ``fn(model, codes, n, generator) -> images`` the sampler ``name``,
    applying to the models for which ``check(model)`` is None."""

    def add(fn: Draw) -> Draw:
        SAMPLERS.register(name, Sampler(fn, check, name))
        return fn

    return add


def available() -> list[str]:
    return SAMPLERS.names()


def get(name: str) -> Sampler:
    return SAMPLERS.get(name)


def problem(name: str, model: torch.nn.Module) -> str | None:
    """Why sampler ``name`` cannot serve ``model`` (one line), or None when it can."""
    why = get(name).check(model)
    return (
        None if why is None else f"sampler {name!r} does not apply to {type(model).__name__}: {why}"
    )


@torch.no_grad()
def _decode(model: torch.nn.Module, z: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    device = next(iter(model.parameters())).device
    parts = [
        model.decode(z[s : s + batch_size].float().to(device)) for s in range(0, len(z), batch_size)
    ]
    return torch.cat(parts)


@register_sampler("prior", needs_own_sampler)
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
    """Decode draws from N(0, I) in the shape of the model's codes, whatever they look like."""
    shape = code_shape(model)
    flat = standard_normal(n, math.prod(shape), generator)
    return _decode(model, flat.reshape(n, *shape))


@register_sampler("gaussian", needs_flat_codes)
def gaussian_sampler(
    model: torch.nn.Module,
    codes: Callable[[], torch.Tensor],
    n: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Decode draws from N(mean, cov) of the training codes."""
    mean, chol = fit_gaussian(codes().cpu())
    z = mean + standard_normal(n, mean.shape[0], generator) @ chol.T
    return _decode(model, z)


@register_sampler("gmm", needs_flat_codes)
def gmm_sampler(
    model: torch.nn.Module,
    codes: Callable[[], torch.Tensor],
    n: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Decode draws from a 10-component mixture fitted to the training codes."""
    mixture = GaussianMixture().fit(codes(), cpu_generator(generator))
    return _decode(model, mixture.sample(n, generator))


def needs_codebook(model: torch.nn.Module) -> str | None:
    if callable(getattr(model, "decode_indices", None)) and hasattr(model, "codebook_size"):
        return None
    return "needs a discrete codebook (codebook_size and decode_indices), and this model has none"


@register_sampler("uniform-codes", needs_codebook)
def uniform_codes_sampler(
    model: torch.nn.Module,
    codes: Callable[[], torch.Tensor],
    n: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Decode grids of codebook entries drawn uniformly and independently at every position:
    the ablation a learned prior over discrete codes (VQ-VAE's PixelCNN) is measured against."""
    grid = code_shape(model)[1:]
    where = generator.device if generator is not None else torch.device("cpu")
    indices = torch.randint(model.codebook_size, (n, *grid), generator=generator, device=where)
    device = next(iter(model.parameters())).device
    with torch.no_grad():
        parts = [model.decode_indices(indices[s : s + 500].to(device)) for s in range(0, n, 500)]
    return torch.cat(parts)
