"""Train one model end to end: data → model → :class:`Trainer` → files in a run folder.

This is the ``run_one`` of the design sketch for a single training, shared by ``aebench train``
and the suite runner, so both produce identical run folders.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch

from aebench import data, models
from aebench.config.run import RunConfig
from aebench.core.allocator import allocator_state
from aebench.core.atomic import atomic_write
from aebench.core.devices import is_allocation_failure, resolve_device, seed_everything
from aebench.core.errors import UsageError
from aebench.core.images import pair_rows, save_grid
from aebench.metrics.evaluation import MetricOptions, evaluate
from aebench.models.base import GenerativeAutoencoder
from aebench.store.database import environment as store_environment
from aebench.store.run_folder import (
    CONFIG,
    HISTORY,
    WEIGHTS,
    load_run,
    prepare_out_dir,
    read_config,
    save_run,
    write_json_atomic,
)
from aebench.store.schema import cpu_name
from aebench.training.probe import step_on_copy
from aebench.training.stages import fit_stages

N_GRID_SAMPLES = 64
N_GRID_RECON = 32


def run_environment(device: torch.device) -> dict[str, Any]:
    """What produced the numbers: the store's environment record (git commit, versions,
    device, threads, host) plus the CPU's model and the instruction set PyTorch's CPU kernels
    use on it (``cpu_capability``: AVX2, AVX512, ...; another one sums in another order, so
    the same seed gives numbers that differ in their last digits), the CPU allocator setting
    (bench/core/allocator.py) and, on CUDA, the GPU name."""
    env = store_environment(str(device))
    env["cpu"] = cpu_name()
    env["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    env["allocator"] = allocator_state()
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


CHECKPOINT = "checkpoint.safetensors"
METRICS_FILE = "metrics.json"
#: what a finished run folder holds: replaced together, never mixed with another run's files
RUN_OUTPUTS = (WEIGHTS, CONFIG, HISTORY, METRICS_FILE, "reconstructions.png", "samples.png")
#: training memory per parameter: fp32 weights, gradients and Adam's two moments
TRAINING_BYTES_PER_PARAMETER = 16


def available_memory(device: torch.device) -> int | None:
    """Bytes the device can still give (MemAvailable on the CPU), or None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def build_model(name: str, config: dict[str, Any], device: torch.device) -> GenerativeAutoencoder:
    """``models.create(name, **config)``, refused in one line when its weights, gradients and
    optimizer state would not fit in memory (sized on the ``meta`` device, so a typo such as
    ``-o hidden=[4000000000]`` allocates nothing), and an allocation failure named likewise."""
    try:
        with torch.device("meta"):
            shell = models.create(name, **config)
    except UsageError:
        raise
    except Exception:  # a model that reads tensor values while it builds: size it after
        shell = None
    if shell is None:
        return models.create(name, **config)
    n_params = sum(p.numel() for p in shell.parameters())
    need = n_params * TRAINING_BYTES_PER_PARAMETER
    free = available_memory(device)
    size = f"{n_params:,} parameters, about {need / 2**30:.1f} GiB to train"
    if free is not None and need > free:
        raise UsageError(
            f"model {name!r} is too large for this machine: {size}, {free / 2**30:.1f} GiB "
            f"free on {device.type}"
        )
    try:
        return models.create(name, **config)
    except (MemoryError, RuntimeError) as err:
        if not is_allocation_failure(err):
            raise
        raise UsageError(f"model {name!r} could not be allocated ({size})") from None


def remove_checkpoints(out_dir: Path) -> None:
    """Remove a run folder's checkpoint and every stage's (``checkpoint.STAGE.safetensors``,
    :func:`~aebench.training.stages.stage_checkpoint`): a finished or restarted run keeps none
    that a later resume could pick up."""
    checkpoint = out_dir / CHECKPOINT
    for path in (checkpoint, *out_dir.glob(f"{checkpoint.stem}.*{checkpoint.suffix}")):
        path.unlink(missing_ok=True)


def claim_out_dir(out: str | Path, resume: bool, overwrite: bool) -> Path:
    """The run folder, made ready for a new training; a finished or interrupted run there is
    never replaced by accident.

    * a finished run (weights or config present) needs ``overwrite``;
    * an interrupted run's checkpoint needs ``resume`` (continue it) or ``overwrite``;
    * ``resume`` with no checkpoint beside a finished run has nothing to resume.

    The outputs of any earlier run are removed before training starts, so new weights never
    sit beside an old ``metrics.json``.
    """
    out_dir = prepare_out_dir(out)
    checkpoint = out_dir / CHECKPOINT
    finished = any((out_dir / name).exists() for name in (WEIGHTS, CONFIG))
    if not overwrite:
        if resume and finished and not checkpoint.exists():
            raise UsageError(
                f"{out_dir} holds a finished run and no checkpoint, so there is nothing to "
                "resume; pass --overwrite to train it again"
            )
        if not resume and checkpoint.exists():
            raise UsageError(
                f"{out_dir} holds the checkpoint of an unfinished run: add --resume to continue "
                "it, or --overwrite to start again"
            )
        if not resume and finished:
            raise UsageError(
                f"{out_dir} already holds a finished run; pass --overwrite to replace it, or "
                "choose another --out"
            )
    if overwrite and not resume:
        remove_checkpoints(out_dir)
    for name in RUN_OUTPUTS:
        (out_dir / name).unlink(missing_ok=True)
    return out_dir


def train_run(
    cfg: RunConfig,
    out: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    dataset: data.ImageData | None = None,
) -> tuple[models.GenerativeAutoencoder, Path]:
    """Train ``cfg`` and write the run folder (weights, config, history, image grids).

    A checkpoint is kept in the folder while training (every epoch, and on SIGTERM/SIGINT);
    ``resume=True`` continues from it. It is removed once the finished run is written. The
    data, the model options and the model's size are checked before the folder is touched;
    :func:`claim_out_dir` says when an existing run may be replaced.
    """
    if dataset is None:  # a caller that also evaluates passes the data it already loaded
        dataset = data.load(cfg.dataset, cfg.data_dir)
    cfg.train.validate()
    seed_everything(cfg.seed)  # the seed fixes the initial weights too
    model = build_model(
        cfg.model, cfg.model_kwargs(dataset.image_shape), resolve_device(cfg.train.device)
    )
    out_dir = claim_out_dir(out, resume, overwrite)
    checkpoint = out_dir / CHECKPOINT
    started = time.time()
    history, device = fit_stages(model, dataset, cfg.train, cfg.model, checkpoint, resume)
    config = {
        **cfg.to_dict(),  # the run's config (RunConfig.from_dict reads it back)
        "model_config": model.config,
        "environment": run_environment(device),
        "started_at": started,
        "wall_seconds": time.time() - started,
    }
    save_run(out_dir, model, config, history)
    write_images(model, dataset, out_dir, seed=cfg.seed)
    remove_checkpoints(out_dir)
    return model, out_dir


def trained_run(
    cfg: RunConfig, out: str | Path
) -> tuple[models.GenerativeAutoencoder, Path] | None:
    """``cfg``'s model, trained to the end in ``out`` by an earlier attempt that was stopped
    while it was evaluated (weights, config and history written, no checkpoint left), else
    None. Evaluating it again is all that attempt left undone: training it anew would lose
    the whole training, where a killed run is meant to lose at most the epochs in flight."""
    out_dir = Path(out)
    written = all((out_dir / name).is_file() for name in (WEIGHTS, CONFIG, HISTORY))
    if not written or any(out_dir.glob(f"{Path(CHECKPOINT).stem}*")):
        return None
    with contextlib.suppress(UsageError):  # unreadable, another run's, or damaged: train anew
        saved = {k: v for k, v in read_config(out_dir).items() if k != "config_hash"}
        if RunConfig.from_dict(saved).config_hash == cfg.config_hash:
            model, _ = load_run(out_dir, map_location=resolve_device(cfg.train.device))
            return model, out_dir
    return None


@torch.inference_mode()
def write_images(
    model: models.GenerativeAutoencoder, dataset: data.ImageData, out_dir: Path, seed: int = 0
) -> None:
    """``reconstructions.png`` (originals over reconstructions) and ``samples.png`` (64)."""
    model.eval()
    device = model.device
    x = data.ImageData.batch(dataset.test_x, slice(0, N_GRID_RECON)).to(device)
    per_row = min(16, x.shape[0])  # a tiny test split (a small image folder) gives one short row
    save_grid(
        pair_rows(x, model.reconstruct(x), per_row=per_row),
        out_dir / "reconstructions.png",
        nrow=per_row,
    )
    gen = torch.Generator(device=device).manual_seed(seed)
    save_grid(model.sample(N_GRID_SAMPLES, generator=gen), out_dir / "samples.png", nrow=8)


def evaluate_run(
    model: models.GenerativeAutoencoder, dataset: data.ImageData, run_dir: Path, options: Any = None
) -> dict[str, Any]:
    """Measure a trained model (:func:`aebench.metrics.evaluation.evaluate`) and write
    ``metrics.json`` into its run folder; returns the scores (flat floats plus ``meta``)."""
    scores = evaluate(model, dataset, options or MetricOptions(), train_step_factory=step_on_copy)
    write_json_atomic(Path(run_dir) / METRICS_FILE, scores)
    return scores


def write_run_files(out: str | Path, files: dict[str, bytes]) -> Path:
    """Write a run's files, trained elsewhere and shipped back (:attr:`RunResult.files`), into
    its run folder, leaving it as a local run does: each file replaced atomically, outputs of
    an earlier attempt that this one lacks removed, no checkpoint. Only the names a run folder
    holds (:data:`RUN_OUTPUTS`) are accepted, so a result cannot write elsewhere."""
    unknown = sorted(set(files) - set(RUN_OUTPUTS))
    if unknown:
        raise UsageError(f"a run's result holds an unexpected file {unknown[0]!r}")
    out_dir = prepare_out_dir(out)
    for name in RUN_OUTPUTS:
        if name not in files:
            (out_dir / name).unlink(missing_ok=True)
    for name, blob in files.items():
        atomic_write(out_dir / name, lambda tmp, blob=blob: Path(tmp).write_bytes(blob))
    remove_checkpoints(out_dir)
    return out_dir
