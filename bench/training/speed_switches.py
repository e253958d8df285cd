"""The training-only speed switches, as one context manager (docs/performance.md).

``channels_last`` (NHWC weights and batches), ``precision="bf16"`` (autocast), ``compile``
(``torch.compile`` of the loss) and ``native_thin_deconv`` (thin transposed convolutions on
PyTorch's own kernel on the CPU, :mod:`aebench.training.thin_deconv`) change how fast a step runs,
never what the trained model is. Entering puts the model in the fast layout and routes its thin
deconvolutions; leaving undoes both, so after training the model computes exactly what the same
weights loaded from disk compute. Entering again (a second ``fit``) is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from aebench.training.thin_deconv import route_thin_deconvs

if TYPE_CHECKING:
    from aebench.training.settings import TrainConfig

Terms = dict[str, torch.Tensor]


def _has_conv(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())


class SpeedSwitches:
    """The switches of ``config`` resolved for ``model`` on ``device`` (None means the
    measured default: channels_last on for conv nets on CUDA only; thin deconvs native on the
    CPU unless compiling)."""

    def __init__(self, model: torch.nn.Module, config: TrainConfig, device: torch.device) -> None:
        self.model = model
        self.device = device
        self.compile = config.compile
        self.channels_last = (
            config.channels_last
            if config.channels_last is not None
            else device.type == "cuda" and _has_conv(model)
        )
        self.native_thin_deconv = (
            config.native_thin_deconv
            if config.native_thin_deconv is not None
            else device.type == "cpu" and not config.compile
        )
        self.autocast_dtype = torch.bfloat16 if config.precision == "bf16" else None
        # compiled forward+loss; the module itself stays as it was, so checkpoints and
        # state_dict keys are the same with or without compile
        self.loss: Callable[[torch.Tensor], Terms] = (
            torch.compile(model.loss) if config.compile else model.loss  # type: ignore[assignment]
        )
        #: a phase's own forward (``Phase.terms``), compiled once when ``compile`` is on
        self._compiled_terms: dict[Callable[[torch.Tensor], Terms], Callable[..., Terms]] = {}
        self._hooks: list[Any] = []

    def __enter__(self) -> SpeedSwitches:
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.native_thin_deconv and not self._hooks:
            self._hooks = route_thin_deconvs(self.model)
        return self

    def __exit__(self, *exc: object) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        if self.channels_last:
            self.model.to(memory_format=torch.contiguous_format)

    def forward(
        self, x: torch.Tensor, terms_fn: Callable[[torch.Tensor], Terms] | None = None
    ) -> Terms:
        """The model's loss terms for one batch (or ``terms_fn``'s: a phase's own forward), in
        the switched layout and precision."""
        loss = self._terms(terms_fn) if terms_fn is not None else self.loss
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.autocast_dtype is None:
            return loss(x)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype):
            terms = loss(x)
        return {k: v.float() for k, v in terms.items()}

    def _terms(self, terms_fn: Callable[[torch.Tensor], Terms]) -> Callable[..., Terms]:
        """``terms_fn``, compiled (once) when ``compile`` is on: a sequential model's phases
        compute their own terms, and compiling only ``model.loss`` left them all eager."""
        if not self.compile:
            return terms_fn
        if terms_fn not in self._compiled_terms:
            self._compiled_terms[terms_fn] = torch.compile(terms_fn)
        return self._compiled_terms[terms_fn]
