"""``evaluate(model, data, options)``: every registered metric family for one trained model.

The model is used only through ``encode``, ``decode``, ``reconstruct``, ``sample(n, generator)``,
``posterior``, ``prior``, ``log_likelihood``, ``default_sampler`` and the flag ``has_posterior``,
so a plugin model that honours that contract is measured exactly like the built-in ones.
``evaluate`` loops over :data:`aebench.metrics.family.FAMILIES`; each family that applies to the
model computes its keys from a shared :class:`~aebench.metrics.context.EvalContext`. The result
is a flat ``dict[str, float]`` keyed by the families' declared names, plus a ``meta`` dict
saying how the numbers were made (backbone and its accuracy, sampler, sizes, device, threads).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch

from aebench import models
from aebench.core.devices import resolve_device
from aebench.data import ImageData
from aebench.metrics.context import EvalContext, TrainStepFactory
from aebench.metrics.family import FAMILIES, all_keys
from aebench.metrics.generation import check_sample_memory, sample_memory_problem
from aebench.metrics.options import MetricOptions

__all__ = ["MetricOptions", "evaluate", "format_table", "planned_memory_problem"]


def planned_memory_problem(
    options: MetricOptions,
    image_shape: Sequence[int],
    model: str,
    device: str,
    n_test: int | None = None,
) -> str | None:
    """What :func:`evaluate` would refuse for memory (:func:`check_sample_memory`), asked
    before the model trains, so a run is refused at once rather than after its training: the
    registered ``model``'s class stands for the trained model (its declared samplers), the
    ``device`` name (``auto`` resolved) for its device, ``n_test`` (the test split's size, when
    known) caps the default sample count as the evaluation will. None when it fits. An unknown
    model or device is the registry's or :func:`~aebench.core.devices.resolve_device`'s
    :class:`UsageError`."""
    cls = models.get(model)[0]
    samplers: tuple[str, ...] = (options.sampler,) if options.sampler is not None else ()
    if not samplers:  # as EvalContext.samplers: the default first, then the declared ones
        declared = getattr(cls, "samplers", ())
        declared = tuple(declared) if isinstance(declared, (tuple, list)) else ()
        samplers = tuple(dict.fromkeys((getattr(cls, "default_sampler", "gaussian"), *declared)))
    device_used = resolve_device(device)
    return sample_memory_problem(options, image_shape, len(samplers), device_used, n_test)


def evaluate(
    model: torch.nn.Module,
    data: ImageData,
    options: MetricOptions | None = None,
    train_step_factory: TrainStepFactory | None = None,
) -> dict[str, Any]:
    """Every requested metric family that applies to ``model``; flat floats plus ``meta``.

    ``train_step_factory`` builds the step that ``train_samples_per_s`` and ``peak_mem_mb``
    time (the caller passes :func:`aebench.training.probe.step_on_copy`: one step of the real
    harness on a copy of the model); without it those two keys are not measured.
    """
    opts = (options or MetricOptions()).resolved()
    model.eval()
    ctx = EvalContext(model, data, opts, train_step_factory)
    check_sample_memory(ctx)  # before anything is generated: n_samples may not fit in memory
    ctx.meta.update(
        {
            "dataset": data.name,
            "dataset_fingerprint": data.fingerprint(),
            "options": asdict(opts),
            "sampler": ctx.sampler,  #: the headline columns' sampler
            "samplers": list(ctx.samplers()),
            "n_real": ctx.n_real,
            "n_samples": ctx.n_samples,
            "device": str(ctx.device),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "has_posterior": ctx.has_posterior,
            "seconds": ctx.seconds,
            "notes": ctx.notes,
        }
    )
    if opts.backbone == "inception" and ctx.device.type == "cpu" and opts.n_samples is None:
        ctx.notes.append(
            f"inception backbone on CPU: {ctx.n_samples} images by default (~0.3 s/image); "
            "FID from few images is biased upwards, compare only at equal n"
        )
    out: dict[str, float] = {}
    evaluated: dict[str, str] = {}  #: family → its options key (the store records them)
    ctx.meta["evaluations"] = evaluated
    for name, family in FAMILIES.items():
        if name not in (opts.families or ()) or not family.applies_to(model):
            continue
        evaluated[name] = family.options_key(opts)
        t0 = time.perf_counter()
        with torch.set_grad_enabled(family.needs_grad):
            values = family.compute(ctx)
        undeclared = sorted(set(values) - set(family.key_names))
        if undeclared:  # a bug in the family: every key it writes must be declared
            raise AssertionError(f"metric family {name!r} wrote undeclared keys {undeclared}")
        out.update(values)
        ctx.seconds[name] = time.perf_counter() - t0
    result: dict[str, Any] = {k: float(v) for k, v in out.items()}
    result["meta"] = ctx.meta
    return result


def format_table(scores: dict[str, Any]) -> str:
    """The flat metrics as an aligned two-column table, in vocabulary order."""
    known = all_keys()
    rows = [(k, scores[k]) for k in known if k in scores]
    rows += [(k, v) for k, v in scores.items() if k not in known and k != "meta"]
    if not rows:
        return "(no metrics)"
    width = max(len(k) for k, _ in rows)
    lines = []
    for key, value in rows:
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
            text = f"{value:.0f}" if key == "active_units" else f"{value:.4g}"
        else:
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)
