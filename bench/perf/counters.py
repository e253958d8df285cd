"""Deterministic counts of one benchmark call: FLOPs, dispatched operations and host reads.

Time on a shared machine is noisy; these counts are not, so the gate compares them exactly.
They catch what timing cannot: reading a tensor's value into Python (``.item()``, ``float()``)
costs microseconds on a CPU, but on a GPU it stalls the host until the device is idle, once per
step. Every such read dispatches ``aten::_local_scalar_dense``, which a
:class:`~torch.utils._python_dispatch.TorchDispatchMode` sees on any device, so the count of
those calls per step is the number of host syncs the step would make on a GPU. FLOPs come from
PyTorch's own :class:`~torch.utils.flop_counter.FlopCounterMode`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

#: the operator behind ``.item()``, ``float(t)``, ``bool(t)``, ``int(t)``: a host read
HOST_READ = "aten._local_scalar_dense.default"


class OpCounter(TorchDispatchMode):
    """Counts every ATen operation dispatched inside the ``with`` block, by overload name."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))


def count(call: Callable[[], Any]) -> dict[str, int]:
    """Run ``call`` once and return its ``flops``, ``ops`` (ATen operations dispatched) and
    ``host_reads`` (values read back into Python)."""
    ops = OpCounter()
    flops = FlopCounterMode(display=False)
    with flops, ops:
        call()
    return {
        "flops": int(flops.get_total_flops()),
        "ops": int(sum(ops.counts.values())),
        "host_reads": int(ops.counts.get(HOST_READ, 0)),
    }


__all__ = ["HOST_READ", "OpCounter", "count"]
