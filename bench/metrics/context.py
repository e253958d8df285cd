"""What a metric family sees: tensors and the model's public API, computed once and shared.

Several families need the same expensive things — the test split's reconstructions, a set of
generated images, the training codes. :class:`EvalContext` computes each on first use and keeps
it, so a family asks for what it needs without knowing who else needs it, and nothing is
computed that no requested family uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from aebench.core.errors import UsageError
from aebench.data import ImageData
from aebench.metrics import samplers

if TYPE_CHECKING:
    from aebench.metrics.options import MetricOptions


#: (model, data, batch size) → one optimizer step of the real harness on a copy of the model.
#: Handed in by the layer above, so metrics never import the training layer.
TrainStepFactory = Callable[[torch.nn.Module, ImageData, int], Callable[[torch.Tensor], Any]]


class EvalContext:
    """One model, one dataset, one set of options; shared intermediate results."""

    def __init__(
        self,
        model: torch.nn.Module,
        data: ImageData,
        options: MetricOptions,
        train_step_factory: TrainStepFactory | None = None,
    ) -> None:
        self.model = model
        self.data = data
        self.options = options
        #: builds the training step the speed family times; None: that step is not timed
        self.train_step_factory = train_step_factory
        self.device = next(iter(model.parameters())).device
        self.has_posterior = bool(getattr(model, "has_posterior", False))
        self.sampler = options.sampler or getattr(model, "default_sampler", "gaussian")
        self.test = data.test_x.cpu()  #: the whole test split, uint8
        self.n_samples = options.resolved_n_samples(self.device, self.test.shape[0])
        self.n_real = min(self.n_samples, self.test.shape[0])
        self.real = self.test[: self.n_real]  #: the real set generated images are compared to
        self.seconds: dict[str, float] = {}
        self.notes: list[str] = []
        if self.n_samples > self.n_real:
            self.notes.append(
                f"n_samples = {self.n_samples:,} generated images against the test split's "
                f"{self.n_real:,} real ones: precision, recall, density and coverage assume "
                "sets of one size"
            )
        self.meta: dict[str, Any] = {}  #: how the numbers were made; families add to it
        self._cache: dict[str, Any] = {}

    def on_device(self, fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """``fn`` with its tensor arguments moved to the model's device."""
        return lambda x, *rest: fn(x.to(self.device), *(r.to(self.device) for r in rest))

    def _once(self, key: str, make: Callable[[], Any], timed: str | None = None) -> Any:
        if key not in self._cache:
            t0 = time.perf_counter()
            self._cache[key] = make()
            if timed:
                self.seconds[timed] = time.perf_counter() - t0
        return self._cache[key]

    @torch.no_grad()
    def reconstruction(self) -> tuple[dict[str, float], torch.Tensor]:
        """Reconstruction metrics over the whole test split, and the reconstructions of the
        real set (float in [0, 1], on the CPU) — one pass serves both."""
        # torchmetrics takes ~5 s to import: paid only when a run is measured
        from aebench.metrics.reconstruction import reconstruction_metrics

        def make() -> tuple[dict[str, float], torch.Tensor]:
            return reconstruction_metrics(
                self.on_device(self.model.reconstruct),
                self.test,
                self.options.batch_size,
                keep=self.n_real,
            )

        return self._once("reconstruction", make)

    def reconstructions(self) -> torch.Tensor:
        return self.reconstruction()[1]

    @torch.no_grad()
    def train_codes(self) -> torch.Tensor:
        """Codes of the whole training split (CPU), for samplers fitted to them."""

        def make() -> torch.Tensor:
            x, bs, enc = (
                self.data.train_x.cpu(),
                self.options.batch_size,
                self.on_device(self.model.encode),
            )
            return torch.cat(
                [enc(ImageData.batch(x, slice(s, s + bs))).cpu() for s in range(0, len(x), bs)]
            )

        return self._once("train_codes", make)

    def samplers(self) -> tuple[str, ...]:
        """The samplers to evaluate: the options' one if set (refused in one line when it
        cannot serve this model), else every sampler the model declares that applies to it,
        its default (the headline columns' sampler) first."""
        if self.options.sampler is not None:
            why = samplers.problem(self.options.sampler, self.model)
            if why is not None:
                raise UsageError(why)
            return (self.options.sampler,)
        declared = tuple(getattr(self.model, "samplers", ()) or ())
        names = dict.fromkeys((self.sampler, *declared))
        return tuple(n for n in names if samplers.get(n).applies_to(self.model))

    @torch.no_grad()
    def samples(self, sampler: str | None = None) -> torch.Tensor:
        """``n_samples`` generated images from ``sampler`` (default: the headline sampler;
        float in [0, 1], CPU), drawn from a generator seeded with the evaluation seed, so every
        sampler of one run starts from the same random stream."""
        name = sampler or self.sampler

        def make() -> torch.Tensor:
            gen = torch.Generator(device=self.device).manual_seed(self.options.seed)
            sample = samplers.get(name)
            return sample(self.model, self.train_codes, self.n_samples, gen).float().clamp(0, 1)

        return self._once(f"samples@{name}", lambda: make().cpu(), timed=f"sampling@{name}")

    def real_images(self) -> torch.Tensor:
        """The real set as float images in [0, 1]."""
        return self._once("real_float", lambda: ImageData.batch(self.real, slice(None)))
