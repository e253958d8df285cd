"""The one training harness: every registered model is trained by :class:`Trainer`.

Why one loop: a comparison between models is only fair when batching, seeding, devices,
precision and evaluation are identical. Models declare loss terms and update phases
(:class:`models.base.Phase`); this module owns everything else.

Speed: the dataset is one uint8 tensor on the training device, batches are index slices of a
seeded per-epoch permutation, converted to float in the fetch; loss terms are accumulated on the
device and read once per epoch, so the hot loop never waits on the host.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from bench.data import ImageData
from bench.errors import UsageError
from models.base import GenerativeAutoencoder, Phase

EVAL_BATCH = 500


class DivergenceError(RuntimeError):
    """A loss term became NaN or infinite; the message names model, epoch, step and term."""


@dataclass(frozen=True)
class TrainConfig:
    """How long and how to train; the same for every model in a comparison."""

    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    max_steps: int | None = None  #: stop after this many optimizer steps (budget in steps)
    max_seconds: float | None = None  #: stop after this wall-clock time (checked per epoch)
    grad_clip: float | None = None  #: clip each phase's gradient norm to this value
    quiet: bool = False

    def validate(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise UsageError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UsageError(f"batch size must be an integer >= 1, got {self.batch_size!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError(f"max_steps must be >= 1, got {self.max_steps!r}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise UsageError(f"max_seconds must be > 0, got {self.max_seconds!r}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise UsageError(f"grad_clip must be > 0, got {self.grad_clip!r}")
        resolve_device(self.device)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; asking for absent CUDA is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r} requested but CUDA is not available here")
        return torch.device(name)
    raise UsageError(f"unknown device {name!r}; choose auto, cpu or cuda")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _make_optimizer(phase: Phase, device: torch.device) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = dict(lr=phase.lr, betas=phase.betas, weight_decay=phase.weight_decay)
    if device.type == "cuda":
        kwargs["fused"] = True
    else:
        kwargs["foreach"] = True
    return torch.optim.Adam(phase.params, **kwargs)


class Trainer:
    """Train ``model`` on ``data`` under ``config``; :meth:`fit` returns the per-epoch history."""

    def __init__(
        self,
        model: GenerativeAutoencoder,
        data: ImageData,
        config: TrainConfig,
        model_name: str | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.device = resolve_device(config.device)
        self.model_name = model_name or type(model).__name__
        self.model = model.to(self.device)
        self.data = data.to(self.device)
        self.phases = model.phases()
        if not self.phases:
            raise ValueError(f"{self.model_name} declares no update phases")
        self.optimizers = [_make_optimizer(p, self.device) for p in self.phases]
        self.history: list[dict[str, Any]] = []
        self.step = 0

    # -- one update ------------------------------------------------------------------------
    def _update(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = self.model.loss(x)
        if len(self.phases) == 1:
            phase, opt = self.phases[0], self.optimizers[0]
            opt.zero_grad(set_to_none=True)
            terms[phase.loss_key].backward()
            if self.config.grad_clip:
                torch.nn.utils.clip_grad_norm_(phase.params, self.config.grad_clip)
            opt.step()
            return terms
        # Several optimizers: every phase's gradient is taken on the same forward pass before
        # any weight changes, so no phase sees another's half-updated parameters.
        grads = []
        for i, phase in enumerate(self.phases):
            last = i == len(self.phases) - 1
            grads.append(
                torch.autograd.grad(
                    terms[phase.loss_key], phase.params, retain_graph=not last, allow_unused=True
                )
            )
        for phase, opt, gs in zip(self.phases, self.optimizers, grads, strict=True):
            for p, g in zip(phase.params, gs, strict=True):
                p.grad = g
            if self.config.grad_clip:
                torch.nn.utils.clip_grad_norm_(phase.params, self.config.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return terms

    # -- epochs ----------------------------------------------------------------------------
    def _check_finite(self, sums: dict[str, torch.Tensor], epoch: int) -> dict[str, float]:
        values = {k: float(v) for k, v in sums.items()}
        for key, value in values.items():
            if not math.isfinite(value):
                raise DivergenceError(
                    f"{self.model_name} diverged: loss term {key!r} is {value} "
                    f"in epoch {epoch} (by step {self.step})"
                )
        return values

    def train_epoch(self, epoch: int, bar: tqdm | None = None) -> dict[str, float]:
        """One pass over a seeded permutation of the training split; mean of each term."""
        self.model.train()
        x_all = self.data.train_x
        n, bs = x_all.shape[0], self.config.batch_size
        gen = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=gen).to(self.device)
        sums: dict[str, torch.Tensor] = {}
        seen = 0
        for start in range(0, n, bs):
            if self.config.max_steps is not None and self.step >= self.config.max_steps:
                break
            idx = perm[start : start + bs]
            x = ImageData.batch(x_all, idx)
            terms = self._update(x)
            for k, v in terms.items():
                v = v.detach() * idx.numel()
                sums[k] = sums[k] + v if k in sums else v
            seen += idx.numel()
            self.step += 1
            if bar is not None:
                bar.update(1)
        return {k: v / max(seen, 1) for k, v in self._check_finite(sums, epoch).items()}

    @torch.inference_mode()
    def evaluate_loss(self, epoch: int) -> dict[str, float]:
        """Mean loss terms on the test split, with the model's noise drawn from a forked RNG so
        evaluation never changes the training stream."""
        self.model.eval()
        x_all = self.data.test_x
        sums: dict[str, torch.Tensor] = {}
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.seed + 7919 * (epoch + 1))
            for start in range(0, x_all.shape[0], EVAL_BATCH):
                x = ImageData.batch(x_all, slice(start, start + EVAL_BATCH))
                for k, v in self.model.loss(x).items():
                    v = v * x.shape[0]
                    sums[k] = sums[k] + v if k in sums else v
        n = x_all.shape[0]
        return {k: v / n for k, v in self._check_finite(sums, epoch).items()}

    @torch.inference_mode()
    def encode_split(self, images: torch.Tensor) -> torch.Tensor:
        """Codes of every image in a uint8 tensor, batched."""
        self.model.eval()
        return torch.cat(
            [
                self.model.encode(ImageData.batch(images, slice(s, s + EVAL_BATCH)))
                for s in range(0, images.shape[0], EVAL_BATCH)
            ]
        )

    def fit(self) -> list[dict[str, Any]]:
        """Train for the budget, fit the sampling prior if the model needs one, return history."""
        cfg = self.config
        seed_everything(cfg.seed)
        steps_per_epoch = math.ceil(self.data.train_x.shape[0] / cfg.batch_size)
        total = steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        quiet = cfg.quiet or not sys.stderr.isatty()
        started = time.perf_counter()
        with tqdm(
            total=total, disable=quiet, desc=self.model_name, unit="step", leave=False
        ) as bar:
            for epoch in range(1, cfg.epochs + 1):
                t0 = time.perf_counter()
                train = self.train_epoch(epoch, bar)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                seconds = time.perf_counter() - t0
                test = self.evaluate_loss(epoch)
                self.history.append(
                    {
                        "epoch": epoch,
                        "step": self.step,
                        "train": train,
                        "test": test,
                        "seconds": seconds,
                    }
                )
                bar.set_postfix(train=f"{train['loss']:.2f}", test=f"{test['loss']:.2f}")
                if cfg.max_steps is not None and self.step >= cfg.max_steps:
                    break
                if cfg.max_seconds is not None and time.perf_counter() - started >= cfg.max_seconds:
                    break
        if self.model.fits_prior:
            with torch.inference_mode():
                self.model.fit_prior(self.encode_split(self.data.train_x))
        self.model.eval()
        return self.history
