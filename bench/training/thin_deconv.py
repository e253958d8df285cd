"""Run thin transposed convolutions' forward through PyTorch's native CPU kernel, not oneDNN.

An image decoder usually ends in a transposed convolution to 1 (grey) or 3 (RGB) channels. On
the CPU, oneDNN runs that shape's forward several times slower than PyTorch's own im2col + GEMM
kernel (for 1–4 output channels; from 8 up oneDNN wins), which made it the slowest layer of the
conv VAE per FLOP. The backward stays on oneDNN, the faster of the two there. The measurements
are in docs/performance.md ("The training harness's speed").

:func:`route_thin_deconvs` switches oneDNN off around the forward of every ``ConvTranspose2d``
with at most :data:`MAX_OUT_CHANNELS` output channels, through module hooks that restore the
previous setting even when the forward raises. The trainer installs them for CPU training and
removes them when training ends.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

#: the widest output for which the native forward was faster (docs/performance.md)
MAX_OUT_CHANNELS = 4


def _is_thin(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.ConvTranspose2d) and module.out_channels <= MAX_OUT_CHANNELS


def route_thin_deconvs(model: torch.nn.Module) -> list[RemovableHandle]:
    """Install the hooks on ``model``'s thin transposed convolutions; returns their handles
    (``handle.remove()`` undoes it). A model without such layers gets none."""
    handles: list[RemovableHandle] = []
    for module in model.modules():
        if not _is_thin(module):
            continue
        saved: list[bool] = []  # a stack: forwards may nest

        def off(mod: torch.nn.Module, args: Any, saved: list[bool] = saved) -> None:
            # the plain switch, not ``torch.backends.mkldnn.flags()``: that also sets oneDNN's
            # TF32 flag and warns about Intel GPUs on every CPU build
            saved.append(torch.backends.mkldnn.enabled)
            torch.backends.mkldnn.enabled = False

        def restore(mod: torch.nn.Module, args: Any, out: Any, saved: list[bool] = saved) -> None:
            if saved:
                torch.backends.mkldnn.enabled = saved.pop()

        handles.append(module.register_forward_pre_hook(off))
        handles.append(module.register_forward_hook(restore, always_call=True))
    return handles
