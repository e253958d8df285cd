"""The one training harness: every registered model is trained by :class:`Trainer`.

Why one loop: a comparison between models is only fair when batching, seeding, devices,
precision and evaluation are identical. Models declare loss terms and update phases
(:class:`aebench.models.base.Phase`); this module owns everything else.

Speed: the dataset is one uint8 tensor on the training device, batches are index slices of a
seeded per-epoch permutation, converted to float in the fetch; loss terms are accumulated on the
device and read once per epoch, so the hot loop never waits on the host.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from aebench.core.allocator import keep_freed_memory
from aebench.core.devices import resolve_device, seed_everything
from aebench.data import ImageData
from aebench.models.base import GenerativeAutoencoder, Progress
from aebench.training.checkpoint import (
    capture_state,
    load_checkpoint,
    restore_state,
    save_checkpoint,
)
from aebench.training.divergence import DivergenceError, FirstNonFinite
from aebench.training.optim import (
    build_optimizer,
    build_schedule,
    check_batches_per_step,
    check_phase,
    check_update_order,
    with_budget_decay,
)
from aebench.training.settings import TrainConfig
from aebench.training.signals import StopSignals
from aebench.training.speed_switches import SpeedSwitches

EVAL_BATCH = 500


class TrainingInterrupted(Exception):
    """SIGTERM/SIGINT arrived; a checkpoint was written and the run can be resumed."""

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted by signal {signum}; checkpoint written to {checkpoint}")
        self.signum = signum
        self.checkpoint = checkpoint


class Trainer:
    """Train ``model`` on ``data`` under ``config``; :meth:`fit` returns the per-epoch history."""

    def __init__(
        self,
        model: GenerativeAutoencoder,
        data: ImageData,
        config: TrainConfig,
        model_name: str | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        inputs: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        config.validate()
        #: what the model trains on, from each batch of images (a later stage's codes); None:
        #: the images themselves
        self.inputs = inputs
        self.checkpoint_path = Path(checkpoint) if checkpoint is not None else None
        self.config = config
        self.device = resolve_device(config.device)
        if self.device.type == "cpu":
            keep_freed_memory()  # no page faults on each batch's activations (core/allocator)
        self.model_name = model_name or type(model).__name__
        self.model = model.to(self.device)
        # the speed switches stay on from here until fit() ends (or end_speed_options())
        self.switches = SpeedSwitches(self.model, config, self.device).__enter__()
        self.channels_last = self.switches.channels_last
        self.native_thin_deconv = self.switches.native_thin_deconv
        self.data = data.to(self.device)
        # a protocol's learning-rate decay becomes each phase's schedule (optim.py)
        self.phases = with_budget_decay(
            model.phases(), config.lr_milestones, config.lr_gamma, self._budget_steps()
        )
        if not self.phases:
            raise ValueError(f"{self.model_name} declares no update phases")
        for phase in self.phases:
            check_phase(phase, self.model_name)
        check_update_order(model.update_order, self.model_name, self.phases)
        check_batches_per_step(model.batches_per_step, self.model_name)
        self.optimizers = [build_optimizer(p) for p in self.phases]
        self.schedules = [
            build_schedule(p, o) for p, o in zip(self.phases, self.optimizers, strict=True)
        ]
        #: optimizer steps each phase has taken (phases with ``every > 1`` take fewer)
        self.phase_updates = [0] * len(self.phases)
        self.history: list[dict[str, Any]] = []
        self.step = 0
        self.epochs_done = 0
        # position inside an interrupted epoch: (epoch, next batch start, partial sums, seen)
        self._resume_pos: tuple[int, int, dict[str, torch.Tensor], int] | None = None
        self.stop = StopSignals()  #: SIGTERM/SIGINT during fit(): checkpoint, then stop
        self._planned_steps = 0  # the budget in steps, set by fit() (for Progress.fraction)
        self._fit_started = time.perf_counter()

    # -- one update ------------------------------------------------------------------------
    def train_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One update on batch ``x`` (float images in [0, 1]): every phase that is due at this
        step (``Phase.every``), in the model's update order; returns the loss terms. The public
        step that `aebench speed`, the speed metric and tests time."""
        due = [i for i, p in enumerate(self.phases) if self.step % p.every == 0]
        if self.model.update_order == "sequential":
            return self._sequential_step(x, due)
        terms = self.switches.forward(x)
        if len(due) == 1 and len(self.phases) == 1:
            phase, opt = self.phases[0], self.optimizers[0]
            opt.zero_grad(set_to_none=True)
            terms[phase.loss_key].backward()
            self._step_phase(0)
            return terms
        # Several optimizers: every phase's gradient is taken on the same forward pass before
        # any weight changes, so no phase sees another's half-updated parameters.
        # backward(inputs=...) rather than autograd.grad: the same work, but it also runs under
        # FlopCounterMode/profilers, whose module hooks autograd.grad does not support. Each
        # phase's gradients are taken out of .grad at once so overlapping phases never mix.
        grads = []
        for n, i in enumerate(due):
            phase = self.phases[i]
            last = n == len(due) - 1
            torch.autograd.backward(
                terms[phase.loss_key], inputs=phase.params, retain_graph=not last
            )
            gs = []
            for p in phase.params:
                gs.append(p.grad)
                p.grad = None
            grads.append(gs)
        for i, gs in zip(due, grads, strict=True):
            for p, g in zip(self.phases[i].params, gs, strict=True):
                p.grad = g
            self._step_phase(i)
            self.optimizers[i].zero_grad(set_to_none=True)
        return terms

    def _sequential_step(self, x: torch.Tensor, due: list[int]) -> dict[str, torch.Tensor]:
        """Each due phase in turn: its own forward pass (``Phase.terms``, else the model's
        loss) on the weights the previous phase left, its own backward, its own step. The
        terms returned are the first forward's, with each later phase's own terms on top."""
        terms: dict[str, torch.Tensor] = {}
        for i in due:
            phase, opt = self.phases[i], self.optimizers[i]
            own = self.switches.forward(x, phase.terms)
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(own[phase.loss_key], inputs=phase.params)
            self._step_phase(i)
            opt.zero_grad(set_to_none=True)
            for k, v in own.items():
                terms.setdefault(k, v)
            terms[phase.loss_key] = own[phase.loss_key]
        return terms

    def _step_phase(self, i: int) -> None:
        """Clip (if asked), step phase ``i``'s optimizer and its per-step schedule."""
        phase = self.phases[i]
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(phase.params, self.config.grad_clip)
        self.optimizers[i].step()
        self.phase_updates[i] += 1
        schedule = self.schedules[i]
        if schedule is not None and phase.schedule is not None and phase.schedule.per == "step":
            schedule.step()

    def _end_epoch_schedules(self) -> None:
        for phase, schedule in zip(self.phases, self.schedules, strict=True):
            if (
                schedule is not None
                and phase.schedule is not None
                and phase.schedule.per == "epoch"
            ):
                schedule.step()

    # -- epochs ----------------------------------------------------------------------------
    def _check_finite(self, sums: dict[str, torch.Tensor], epoch: int) -> dict[str, float]:
        """Read the accumulated terms (the epoch's one host sync) and stop on NaN/inf, naming the
        specific term that went bad rather than the total it contaminates."""
        values = {k: float(v) for k, v in sums.items()}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            key = next((k for k in bad if k != "loss"), bad[0])
            raise DivergenceError(
                f"{self.model_name} diverged: loss term {key!r} is {values[key]} "
                f"in epoch {epoch} (by step {self.step})"
            )
        return values

    def train_epoch(self, epoch: int, bar: tqdm | None = None) -> dict[str, float]:
        """One pass over a seeded permutation of the training split; mean of each term.

        The permutation depends only on (seed, epoch), so an epoch interrupted at batch k and
        resumed from a checkpoint sees exactly the batches it would have seen.
        """
        self.model.train()
        x_all = self.data.train_images(epoch, self.config.seed)  # dynamic binarization: redrawn
        n, bs = x_all.shape[0], self._step_images()
        gen = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=gen).to(self.device)
        sums: dict[str, torch.Tensor] = {}
        seen, first = 0, 0
        if self._resume_pos is not None and self._resume_pos[0] == epoch:
            _, first, sums, seen = self._resume_pos
            sums = {k: v.to(self.device) for k, v in sums.items()}
        self._resume_pos = None
        watch = FirstNonFinite()
        for start in range(first, n, bs):
            if self.config.max_steps is not None and self.step >= self.config.max_steps:
                break
            if self.stop.signum is not None:
                self.save_checkpoint(in_epoch=(epoch, start, sums, seen))
                raise TrainingInterrupted(self.stop.signum, self.checkpoint_path)
            idx = perm[start : start + bs]
            x = self._model_inputs(ImageData.batch(x_all, idx))
            self.model.progress = self._progress(epoch, self._budget_fraction())
            terms = self.train_step(x)
            for k, v in terms.items():
                v = v.detach() * idx.numel()
                sums[k] = sums[k] + v if k in sums else v
            seen += idx.numel()
            self.step += 1
            watch.update(terms, self.step)
            if bar is not None:
                bar.update(1)
        bad = watch.first()
        if bad is not None:
            step, key, value = bad
            raise DivergenceError(
                f"{self.model_name} diverged: loss term {key!r} is {value} at step {step} "
                f"(epoch {epoch})"
            )
        self._end_epoch_schedules()
        return {k: v / max(seen, 1) for k, v in self._check_finite(sums, epoch).items()}

    def _model_inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.inputs is None:
            return x
        with torch.no_grad():  # the earlier stages are fixed: no gradient reaches them
            return self.inputs(x)

    def _progress(self, epoch: int, fraction: float) -> Progress:
        """What the model sees of training (:class:`Progress`) at this step."""
        return Progress(self.step, epoch, fraction, int(self.data.train_x.shape[0]))

    def _budget_fraction(self) -> float:
        """The share of the training budget spent before this step, in [0, 1]: steps over the
        planned steps for an epoch or step budget; for a wall-clock budget, seconds over the
        budget, which no seed reproduces (docs/extending.md says so)."""
        if self.config.max_seconds is not None and self.config.max_steps is None:
            spent = time.perf_counter() - self._fit_started
            return min(1.0, spent / self.config.max_seconds)
        return min(1.0, self.step / max(self._planned_steps, 1))

    def evaluate_loss(self, epoch: int) -> dict[str, float]:
        """Mean loss terms on the test split, with the model's noise drawn from a forked RNG so
        evaluation never changes the training stream; under inference mode, unless a loss term
        needs autograd itself (``loss_needs_grad``: a gradient penalty)."""
        grad = self.model.loss_needs_grad
        with torch.enable_grad() if grad else torch.inference_mode():
            return self._test_terms(epoch, detach=grad)

    def _test_terms(self, epoch: int, detach: bool) -> dict[str, float]:
        self.model.eval()
        x_all = self.data.test_x
        sums: dict[str, torch.Tensor] = {}
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.seed + 7919 * (epoch + 1))
            for start in range(0, x_all.shape[0], EVAL_BATCH):
                x = self._model_inputs(ImageData.batch(x_all, slice(start, start + EVAL_BATCH)))
                for k, v in self.model.loss(x).items():
                    v = (v.detach() if detach else v) * x.shape[0]
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

    # -- checkpoints (the state itself: bench/training/checkpoint.py) ---------------------
    def save_checkpoint(
        self, in_epoch: tuple[int, int, dict[str, torch.Tensor], int] | None = None
    ) -> None:
        """Write everything needed to continue bit-identically (:func:`capture_state`)."""
        if self.checkpoint_path is not None:
            save_checkpoint(self.checkpoint_path, *capture_state(self, in_epoch))

    def load_checkpoint(self) -> bool:
        """Restore from :attr:`checkpoint_path` if it exists; False when there is none. A
        checkpoint of another run, or of this run under other training settings, is refused."""
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return False
        tensors, meta = load_checkpoint(self.checkpoint_path)
        self._resume_pos = restore_state(self, tensors, meta, self.checkpoint_path)
        return True

    def fit(self, resume: bool = False) -> list[dict[str, Any]]:
        """Train for the budget, fit the sampling prior if the model needs one, return history.

        With a checkpoint path, a checkpoint is written after every epoch and when SIGTERM or
        SIGINT arrives (then :class:`TrainingInterrupted` is raised); ``resume=True`` continues
        from the last checkpoint, ending bit-identical to an uninterrupted run on CPU.
        """
        cfg = self.config
        seed_everything(cfg.seed)
        self.switches.__enter__()  # again, if an earlier fit() ended them
        if not (resume and self.load_checkpoint()):
            self.history, self.step, self.epochs_done = [], 0, 0
        self._planned_steps = self._budget_steps()
        started = self._fit_started = time.perf_counter()
        try:
            with self.stop.watch(self.checkpoint_path is not None), self._progress_bar() as bar:
                for epoch in range(self.epochs_done + 1, cfg.epoch_limit + 1):
                    if cfg.max_steps is not None and self.step >= cfg.max_steps:
                        break
                    self._fit_epoch(epoch, bar)
                    # a wall-clock budget is checked after each epoch, so even a budget shorter
                    # than one epoch trains one: a run is never recorded with zero steps
                    if self._seconds_spent(started):
                        break
                if self.stop.signum is not None:  # came in the last step or test loss: the
                    # last epoch's checkpoint is written, so a resume trains nothing more
                    raise TrainingInterrupted(self.stop.signum, self.checkpoint_path)
        finally:
            self.end_speed_options()
        if self.model.fits_prior:
            with torch.inference_mode():
                self.model.fit_prior(self.encode_split(self.data.train_x))
        self.model.eval()
        self.model.progress = self._progress(self.epochs_done, 1.0)
        return self.history

    def _budget_steps(self) -> int:
        """The budget in steps: the epochs' steps, or ``max_steps`` when that is fewer."""
        steps_per_epoch = math.ceil(self.data.train_x.shape[0] / self._step_images())
        total = steps_per_epoch * self.config.epoch_limit
        return total if self.config.max_steps is None else min(total, self.config.max_steps)

    def _step_images(self) -> int:
        """Images one step consumes: the batch size times the model's ``batches_per_step``."""
        return self.config.batch_size * self.model.batches_per_step

    def _progress_bar(self) -> tqdm:
        quiet = self.config.quiet or not sys.stderr.isatty()
        return tqdm(total=self._planned_steps, initial=min(self.step, self._planned_steps),
                    disable=quiet, desc=self.model_name, unit="step", leave=False)  # fmt: skip

    def _fit_epoch(self, epoch: int, bar: tqdm) -> None:
        """Train one epoch, measure the test loss, record the history row, checkpoint."""
        t0 = time.perf_counter()
        # each phase's learning rate as the epoch starts (its schedule may move it within)
        lr = {p.name: o.param_groups[0]["lr"] for p, o in zip(self.phases, self.optimizers,
                                                              strict=True)}  # fmt: skip
        train = self.train_epoch(epoch, bar)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        self.model.progress = self._progress(epoch, self._budget_fraction())
        test = self.evaluate_loss(epoch)
        row = {"epoch": epoch, "step": self.step, "train": train, "test": test,
               "seconds": seconds, "lr": lr}  # fmt: skip
        self.history.append(row)
        self.epochs_done = epoch
        self.save_checkpoint()
        bar.set_postfix(train=f"{train['loss']:.2f}", test=f"{test['loss']:.2f}")

    def end_speed_options(self) -> None:
        """Undo the training-only speed switches (:class:`SpeedSwitches`), so the model computes
        exactly what the same weights loaded from disk compute. :meth:`fit` does it when
        training ends."""
        self.switches.__exit__(None, None, None)

    def _seconds_spent(self, started: float) -> bool:
        limit = self.config.max_seconds
        return limit is not None and time.perf_counter() - started >= limit
