"""``nox -s device_check``: the CUDA paths checked in one short script on a lent GPU.

What it checks, on ``--device`` (``cuda`` on a GPU machine; ``cpu`` so CI runs the same logic):

1. **train + eval**: a conv VAE trained for one epoch on mnist-5k through the real run path
   (``train_run``: checkpoints, the run folder) and evaluated by every metric family; every
   number must be finite;
2. **host syncs**: one training epoch under ``torch.profiler``, counting the operations that
   make the host wait for the device (``aten::_local_scalar_dense`` — ``.item()``, ``float()``
   — and CUDA stream/device synchronisations; Adam's reads of its own host-side step counter
   are not syncs and are left out). The harness reads its loss terms once per epoch (one read
   per term, a handful in all), so the count must not grow with the number of steps: the
   check fails when there is one every other step or more;
3. **speed**: ``aebench speed`` for the conv VAE and VAE-GAN at batch 64 and 256 in fp32, with
   ``channels_last`` on, and under bf16 autocast — each as samples/s and % of the matmul rate.

It writes ``device_check.json`` and ``device_check.md`` (a table for docs/performance.md) into
``--out`` and exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from aebench import data, models
from aebench.config.run import RunConfig
from aebench.core.devices import resolve_device
from aebench.core.errors import UsageError
from aebench.experiments.single_run import evaluate_run, train_run
from aebench.metrics.options import MetricOptions
from aebench.perf.throughput import SpeedOptions, run_speed
from aebench.store.run_folder import prepare_out_dir
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer

SYNC_OPS = ("aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize")
MAX_SYNCS_PER_STEP = 0.5


def _inside_optimizer(event: Any) -> bool:
    """Whether a profiled op ran inside ``Optimizer.step``: Adam reads its own step counter,
    a host-side tensor that needs no device sync, with ``.item()``."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("Optimizer."):
            return True
        parent = parent.cpu_parent
    return False


def count_host_syncs(trainer: Any, epoch: int = 1) -> dict[str, Any]:
    """Profile one ``trainer.train_epoch``; the host-sync operations it ran (outside the
    optimizer's own bookkeeping), and its steps."""
    activities = [ProfilerActivity.CPU]
    if trainer.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    steps_before = trainer.step
    with profile(activities=activities) as prof:
        trainer.train_epoch(epoch)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
    counts = {op: 0 for op in SYNC_OPS}
    for event in prof.events():
        if event.name in counts and not _inside_optimizer(event):
            counts[event.name] += 1
    counts["cudaDeviceSynchronize"] = max(0, counts["cudaDeviceSynchronize"] - 1)  # ours, above
    steps = trainer.step - steps_before
    total = sum(counts.values())
    return {"steps": steps, "syncs": total, "per_step": total / max(steps, 1), "by_op": counts}


def _train_and_evaluate(device: str, out: Path, quick: bool) -> dict[str, Any]:
    cfg = RunConfig(
        model="vae",
        dataset="mnist-5k",
        arch="conv",
        train=TrainConfig(
            epochs=1, batch_size=128, device=device, quiet=True, max_steps=4 if quick else None
        ),
        metrics=MetricOptions(n_samples=100 if quick else 1000, iw_k=5, iw_n=50),
    )
    dataset = data.load(cfg.dataset)
    t0 = time.perf_counter()
    model, run_dir = train_run(cfg, out / "run", overwrite=True, dataset=dataset)
    trained = time.perf_counter() - t0
    scores = evaluate_run(model, dataset, run_dir, cfg.evaluation_options())
    values = {k: v for k, v in scores.items() if k != "meta"}
    bad = sorted(k for k, v in values.items() if not math.isfinite(v))
    return {
        "train_seconds": trained,
        "eval_seconds": sum(scores["meta"]["seconds"].values()),
        "metrics": values,
        "non_finite": bad,
        "ok": not bad and bool(values),
    }


def _syncs(device: str, quick: bool) -> dict[str, Any]:
    dataset = data.load("mnist-5k")
    torch.manual_seed(0)
    model = models.create("vae", arch="conv")
    steps = 20 if quick else None
    config = TrainConfig(epochs=1, batch_size=64, device=device, quiet=True, max_steps=steps)
    trainer = Trainer(model, dataset, config, "vae")
    trainer.train_epoch(1)  # warm-up: allocator, kernels, lazy init
    trainer.step = 0
    found = count_host_syncs(trainer, epoch=2)
    found["ok"] = found["steps"] >= 10 and found["per_step"] < MAX_SYNCS_PER_STEP
    return found


def _speed(device: str, quick: bool) -> list[dict[str, Any]]:
    rows = []
    variants = {
        "fp32": {},
        "fp32 channels_last": {"channels_last": True},
        "bf16": {"precision": "bf16"},
    }
    for name, switches in variants.items():
        opts = SpeedOptions(
            models=("vae",) if quick else ("vae", "vae-gan"),
            archs=("conv",),
            batch_sizes=(64,) if quick else (64, 256),
            steps=3 if quick else 20,
            repeats=1 if quick else 5,
            warmup_steps=1 if quick else 5,
            train=TrainConfig(device=device, **switches),
        )
        for r in run_speed(opts, progress=False):
            rows.append({"variant": name, "model": r.model, "batch_size": r.batch_size,
                         "samples_per_s": r.train_samples_per_s,
                         "pct_of_matmul": 100 * r.achieved_gflops / r.matmul_gflops,
                         "device": r.device, "threads": r.threads})  # fmt: skip
    return rows


def run_check(device: str, out: str | Path, quick: bool = False) -> dict[str, Any]:
    """All three checks on ``device``; writes ``device_check.json`` / ``.md`` into ``out``."""
    target = resolve_device(device)
    out_dir = prepare_out_dir(out)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "device": str(target),
        "name": torch.cuda.get_device_name(target) if target.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "quick": quick,
        "train_eval": _train_and_evaluate(str(target), out_dir, quick),
        "host_syncs": _syncs(str(target), quick),
        "speed": _speed(str(target), quick),
    }
    result["seconds"] = time.perf_counter() - started
    result["ok"] = bool(result["train_eval"]["ok"] and result["host_syncs"]["ok"])
    (out_dir / "device_check.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out_dir / "device_check.md").write_text(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    """The docs/performance.md table: speed per variant, then the sync and train/eval verdicts."""
    syncs = result["host_syncs"]
    lines = [
        f"Device check on {result['name']} ({result['device']}, torch {result['torch']}), "
        f"{result['seconds']:.0f} s:",
        "",
        "| Variant | Model | Batch | Train samples/s | % of matmul rate |",
        "|:---|:---|---:|---:|---:|",
    ]
    for r in result["speed"]:
        lines.append(f"| {r['variant']} | {r['model']} | {r['batch_size']} | "
                     f"{r['samples_per_s']:.0f} | {r['pct_of_matmul']:.1f} |")  # fmt: skip
    lines += [
        "",
        f"Host syncs in a profiled epoch: {syncs['syncs']} over {syncs['steps']} steps "
        f"({syncs['per_step']:.3f} per step; fails at {MAX_SYNCS_PER_STEP}) — "
        f"{'ok' if syncs['ok'] else 'FAILED'}.",
        f"Train + eval: {'ok' if result['train_eval']['ok'] else 'FAILED'} "
        f"({result['train_eval']['train_seconds']:.1f} s training, "
        f"{len(result['train_eval']['metrics'])} metrics finite).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aebench.perf.device_check", description=__doc__)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--out", default="runs/device-check", help="folder for the JSON and table")
    p.add_argument("--quick", action="store_true", help="tiny sizes (CI checks the logic)")
    args = p.parse_args(argv)
    try:
        result = run_check(args.device, args.out, quick=args.quick)
    except UsageError as err:
        print(f"device_check: error: {err}", file=sys.stderr)
        return 2
    print(markdown(result), end="")
    print(f"wrote {Path(args.out) / 'device_check.json'}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["count_host_syncs", "markdown", "run_check"]
