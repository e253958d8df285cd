"""Train one model end to end: data → model → :class:`Trainer` → files in a run folder.

This is the ``run_one`` of the design sketch for a single training, shared by ``aebench train``
and the suite runner, so both produce identical run folders.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import models
from bench import data
from bench.allocator import allocator_state
from bench.images import pair_rows, save_grid
from bench.runio import prepare_out_dir, save_run
from bench.trainer import TrainConfig, Trainer, seed_everything

N_GRID_SAMPLES = 64
N_GRID_RECON = 32


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one training run."""

    model: str
    dataset: str = "mnist-5k"
    arch: str = "mlp"
    latent_dim: int = 16
    train: TrainConfig = field(default_factory=TrainConfig)
    model_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None


def environment(device: torch.device) -> dict[str, Any]:
    """What produced the numbers: the store's environment record (git commit, versions,
    device, threads, host) plus the CPU, the CPU allocator setting (bench/allocator.py) and, on
    CUDA, the GPU name."""
    from bench.store import environment as store_environment

    env = store_environment(str(device))
    env["cpu"] = platform.processor() or platform.machine()
    env["allocator"] = allocator_state()
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


CHECKPOINT = "checkpoint.safetensors"


def train_run(
    spec: RunSpec, out: str | Path, resume: bool = False
) -> tuple[models.GenerativeAutoencoder, Path]:
    """Train ``spec`` and write the run folder (weights, config, history, image grids).

    A checkpoint is kept in the folder while training (every epoch, and on SIGTERM/SIGINT);
    ``resume=True`` continues from it. It is removed once the finished run is written.
    """
    out_dir = prepare_out_dir(out)
    dataset = data.load(spec.dataset, spec.data_dir)
    model_config = {
        "arch": spec.arch,
        "latent_dim": spec.latent_dim,
        "image_shape": list(dataset.image_shape),
        **spec.model_options,
    }
    seed_everything(spec.train.seed)  # the seed fixes the initial weights too
    model = models.create(spec.model, **model_config)
    checkpoint = out_dir / CHECKPOINT
    trainer = Trainer(model, dataset, spec.train, model_name=spec.model, checkpoint=checkpoint)
    started = time.time()
    history = trainer.fit(resume=resume)
    config = {
        "model": spec.model,
        "model_config": model.config,
        "dataset": spec.dataset,
        "data_dir": spec.data_dir,
        "arch": spec.arch,
        "seed": spec.train.seed,
        "train": spec.train.to_json(),
        "environment": environment(trainer.device),
        "started_at": started,
        "wall_seconds": time.time() - started,
    }
    save_run(out_dir, model, config, history)
    write_images(model, dataset, out_dir, seed=spec.train.seed)
    checkpoint.unlink(missing_ok=True)
    return model, out_dir


@torch.inference_mode()
def write_images(
    model: models.GenerativeAutoencoder, dataset: data.ImageData, out_dir: Path, seed: int = 0
) -> None:
    """``reconstructions.png`` (originals over reconstructions) and ``samples.png`` (64)."""
    model.eval()
    device = model.device
    x = data.ImageData.batch(dataset.test_x, slice(0, N_GRID_RECON)).to(device)
    save_grid(
        pair_rows(x, model.reconstruct(x), per_row=16), out_dir / "reconstructions.png", nrow=16
    )
    gen = torch.Generator(device=device).manual_seed(seed)
    save_grid(model.sample(N_GRID_SAMPLES, generator=gen), out_dir / "samples.png", nrow=8)


METRICS_FILE = "metrics.json"


def evaluate_run(
    model: models.GenerativeAutoencoder, dataset: data.ImageData, run_dir: Path, options: Any = None
) -> dict[str, Any]:
    """Measure a trained model (:func:`bench.metrics.evaluation.evaluate`) and write
    ``metrics.json`` into its run folder; returns the scores (flat floats plus ``meta``)."""
    from bench.metrics.evaluation import MetricOptions, evaluate
    from bench.runio import write_json_atomic

    scores = evaluate(model, dataset, options or MetricOptions())
    write_json_atomic(Path(run_dir) / METRICS_FILE, scores)
    return scores
