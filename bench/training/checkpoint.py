"""Crash-safe training checkpoints: what a trainer's state is, and how it is kept on disk.

Why one file: the weights, every optimizer's state, the RNG states and the loop position must
change together; a safetensors file carries tensors plus a string→string metadata header, so the
JSON part rides inside it and a single ``rename`` publishes both. Loading never runs pickled code.

Why a schema: the metadata is JSON a user can edit. Every field is checked before any of it is
applied, so a damaged checkpoint is refused in one line, and a checkpoint taken under other
training settings (seed, batch size, precision, …) is refused instead of silently continuing
into a run whose ``config.json`` would describe settings the weights were not trained with.
The one setting that may change is a larger ``epochs``: it extends the run, unless the run plans
on its budget (learning-rate milestones, a warm-up, a later stage begun), which would move.
"""

from __future__ import annotations

import ast
import json
import math
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from aebench import models
from aebench.core.atomic import atomic_write
from aebench.core.errors import UsageError

if TYPE_CHECKING:
    from aebench.training.trainer import Trainer

FORMAT = 1
META_KEY = "aebench"
#: training settings that do not change what is computed (progress display only)
PRESENTATION_ONLY = frozenset({"quiet"})

InEpoch = tuple[int, int, dict[str, torch.Tensor], int]


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``tensors`` and JSON ``meta`` to ``path`` atomically (temp file, fsync, rename)."""
    payload = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {META_KEY: json.dumps({"format": FORMAT, **meta})}
    atomic_write(path, lambda tmp: save_file(payload, tmp, metadata=header))


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint; a one-line :class:`UsageError` for a truncated or foreign file."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = (f.metadata() or {}).get(META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except FileNotFoundError:
        raise UsageError(f"no checkpoint at {path}") from None
    except (SafetensorError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(
            f"checkpoint {path} is unreadable (truncated or corrupt?): {first}"
        ) from None
    if raw is None:
        raise UsageError(f"{path} is not an aebench checkpoint (no aebench metadata)")
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON, over-deep nesting, huge integer literals
        raise UsageError(f"checkpoint {path} has corrupt metadata") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise UsageError(f"checkpoint {path} has format {found!r}, expected {FORMAT}")
    return tensors, meta


def epochs_done(path: Path) -> int:
    """How many epochs the checkpoint at ``path`` had finished, from its metadata alone; 0 for
    a file that cannot be read (this is for messages, never for resuming)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = json.loads((f.metadata() or {}).get(META_KEY, "{}"))
        return int(meta.get("epochs_done", 0))
    except (SafetensorError, OSError, ValueError, TypeError, AttributeError):
        return 0


# -- a trainer's state ------------------------------------------------------------------------
def identity(trainer: Trainer) -> dict[str, Any]:
    """What a checkpoint must share with the trainer that resumes it."""
    return {
        "model_name": trainer.model_name,
        "model_config": trainer.model.config,
        "train": trainer.config.to_dict(),
        "n_train": int(trainer.data.train_x.shape[0]),
        "dataset": trainer.data.name,
    }


def capture_state(
    trainer: Trainer, in_epoch: InEpoch | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Everything needed to continue bit-identically: weights, optimizer states, RNG states
    (Python, NumPy, torch CPU and CUDA), position inside the epoch, history."""
    tensors = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    groups = []
    for i, opt in enumerate(trainer.optimizers):
        sd = opt.state_dict()
        groups.append(sd["param_groups"])
        for pid, st in sd["state"].items():
            for name, value in st.items():
                tensors[f"optim.{i}.{pid}.{name}"] = torch.as_tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    if trainer.device.type == "cuda":
        for j, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{j}"] = state
    np_state = np.random.get_state()
    meta: dict[str, Any] = {
        **identity(trainer),
        "epochs_done": trainer.epochs_done,
        "step": trainer.step,
        "history": trainer.history,
        "optim_groups": groups,
        "schedules": [_schedule_state(s) for s in trainer.schedules],
        "phase_updates": list(trainer.phase_updates),
        "py_random": repr(random.getstate()),
        "np_random": [np_state[0], np_state[1].tolist(), *map(float, np_state[2:])],
        "in_epoch": None,
    }
    if in_epoch is not None:
        epoch, start, sums, seen = in_epoch
        meta["in_epoch"] = {"epoch": epoch, "start": start, "seen": seen, "terms": sorted(sums)}
        for k, v in sums.items():
            tensors[f"sums.{k}"] = v
    return tensors, meta


def _count(value: Any) -> bool:
    """A whole number from 0 to 2**62 (a step, an epoch, a position)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62


def _python_rng(text: Any) -> tuple[Any, ...]:
    """``random.getstate()`` back from its ``repr``: (3, 625 words, None or a float)."""
    state = ast.literal_eval(text) if isinstance(text, str) else None
    ok = (
        isinstance(state, tuple)
        and len(state) == 3
        and isinstance(state[1], tuple)
        and len(state[1]) == 625
        and all(isinstance(w, int) and 0 <= w < 2**32 for w in state[1])
        and (state[2] is None or isinstance(state[2], float))
    )
    if not ok:
        raise ValueError("py_random is not a Python RNG state")
    return state  # type: ignore[return-value]


def _numpy_rng(value: Any) -> tuple[Any, ...]:
    """``np.random.get_state()`` back from its JSON list: [kind, 624 words, pos, gauss, cached]."""
    ok = (
        isinstance(value, list)
        and len(value) == 5
        and value[0] == "MT19937"
        and isinstance(value[1], list)
        and len(value[1]) == 624
        and all(isinstance(w, int) and 0 <= w < 2**32 for w in value[1])
        and all(isinstance(v, int | float) for v in value[2:])
    )
    if not ok:
        raise ValueError("np_random is not a NumPy RNG state")
    return (value[0], np.asarray(value[1], dtype=np.uint32), int(value[2]), int(value[3]),
            float(value[4]))  # fmt: skip


def _check_settings(stored: Any, current: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint taken under other training settings (a larger ``epochs`` extends)."""
    if not isinstance(stored, dict):
        raise ValueError("train is not a table of training settings")
    for key in sorted(set(stored) | set(current)):
        if key in PRESENTATION_ONLY:
            continue
        was, now = stored.get(key), current.get(key)
        if key == "epochs" and _count(was) and _count(now) and now >= was:
            continue
        if json.dumps(was) != json.dumps(now):  # by JSON, so 0.0 is not taken for 0
            hint = " (--epochs may only grow)" if key == "epochs" else ""
            raise UsageError(
                f"checkpoint {path} was taken with {key}={was!r}, this run asks for "
                f"{key}={now!r}{hint}: resume with the original settings, or pass --overwrite "
                "to start again"
            )


def _check_extension(trainer: Trainer, was: Any, path: Path) -> None:
    """Refuse to extend (a larger ``epochs``) a run that plans on its budget: its learning-rate
    milestones or a warm-up would move under a run already part trained, giving a run of
    neither length (the decay applied twice). A staged run whose later stage has begun is
    refused by :func:`~aebench.training.stages.fit_stages`."""
    now = trainer.config.epochs
    if was == now:
        return
    model = trainer.model
    plans = ["learning-rate milestones"] if trainer.config.lr_milestones else []
    plans += model.budget_plans() if hasattr(model, "budget_plans") else []
    if plans:
        raise UsageError(
            f"checkpoint {path} was taken with epochs={was}, and this run plans "
            f"{' and '.join(plans)} on its budget, so {now} epochs would not be this run "
            f"extended: resume with --epochs {was}, or pass --overwrite to train {now} epochs "
            "from the start"
        )


def cuda_rng_states(tensors: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The saved ``rng.cuda.J`` states in device order (by J as a number: ``rng.cuda.10``
    sorts after ``rng.cuda.9``, not before ``rng.cuda.2``)."""
    keys = [k for k in tensors if k.startswith("rng.cuda.")]
    return [tensors[k] for k in sorted(keys, key=lambda k: int(k.rsplit(".", 1)[1]))]


def restore_state(
    trainer: Trainer, tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: Path
) -> InEpoch | None:
    """Put a checkpoint's state back into ``trainer`` and return the position inside an
    interrupted epoch (None at an epoch boundary). Every field is checked first; any problem is
    a one-line :class:`UsageError`."""
    mine = identity(trainer)
    theirs = dict(meta)
    if isinstance(meta.get("model_config"), dict):  # options a model retired since, upgraded
        theirs["model_config"] = models.upgrade_options(mine["model_name"], meta["model_config"])
    for key in ("model_name", "model_config", "n_train", "dataset"):
        if key == "dataset" and key not in meta:
            continue  # checkpoints before 2026-12 did not record the dataset's name
        if theirs.get(key) != mine[key]:
            raise UsageError(
                f"checkpoint {path} belongs to another run ({key} differs: "
                f"{theirs.get(key)!r} vs {mine[key]!r})"
            )
    try:
        _check_settings(meta.get("train"), mine["train"], path)
        _check_extension(trainer, meta["train"].get("epochs"), path)
        py_state = _python_rng(meta.get("py_random"))
        np_state = _numpy_rng(meta.get("np_random"))
        step, epochs_done, history = meta.get("step"), meta.get("epochs_done"), meta.get("history")
        if not (_count(step) and _count(epochs_done)):
            raise ValueError("step and epochs_done must be whole numbers >= 0")
        epochs = meta["train"].get("epochs")
        limit = epochs if _count(epochs) else (2**62 if epochs is None else 0)
        if epochs_done > limit or epochs_done > step:
            raise ValueError(f"epochs_done={epochs_done} is more than the run trained")
        if not isinstance(history, list) or [
            h.get("epoch") if isinstance(h, dict) else None for h in history
        ] != list(range(1, epochs_done + 1)):
            raise ValueError("history is not one record per finished epoch (1, 2, ...)")
        groups = meta.get("optim_groups")
        if not isinstance(groups, list) or len(groups) != len(trainer.optimizers):
            raise ValueError(f"optim_groups must list {len(trainer.optimizers)} optimizer(s)")
        rng = tensors.get("rng.torch")
        if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8:
            raise ValueError("the torch RNG state (rng.torch) is missing")
        cuda_rng = cuda_rng_states(tensors)  # a damaged key is a ValueError, caught below
        position = _resume_position(meta.get("in_epoch"), tensors)
        schedules, updates = _phase_states(trainer, meta, step)
        state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        trainer.model.load_state_dict(state, strict=True)
        _load_optimizers(trainer, tensors, groups)
        for schedule, saved in zip(trainer.schedules, schedules, strict=True):
            if schedule is not None and saved is not None:
                schedule.load_state_dict(saved)
        trainer.phase_updates = updates
    except UsageError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError, SyntaxError) as err:
        detail = " ".join(str(err).split())[:200] or type(err).__name__
        raise UsageError(
            f"checkpoint {path} is damaged or does not fit the model: {detail}"
        ) from None
    torch.set_rng_state(rng)
    if trainer.device.type == "cuda":
        torch.cuda.set_rng_state_all(cuda_rng)
    random.setstate(py_state)
    np.random.set_state(np_state)
    trainer.history, trainer.step, trainer.epochs_done = history, step, epochs_done
    return position


#: what a learning-rate schedule's state holds beyond its declaration (which is rebuilt from
#: the model's Phase, not read back: MultiStepLR's milestones would not survive JSON)
SCHEDULE_STATE = ("last_epoch", "_step_count", "_last_lr", "base_lrs")


def _schedule_state(schedule: Any) -> dict[str, Any] | None:
    if schedule is None:
        return None
    state = schedule.state_dict()
    return {k: state[k] for k in SCHEDULE_STATE if k in state}


def _phase_states(
    trainer: Trainer, meta: dict[str, Any], step: int
) -> tuple[list[dict[str, Any] | None], list[int]]:
    """Each phase's schedule state and update count, checked against the trainer's phases. A
    checkpoint from before schedules existed has neither: every phase then stepped every step
    and none had a schedule."""
    n = len(trainer.phases)
    schedules = meta.get("schedules", [None] * n)
    updates = meta.get("phase_updates", [step] * n)
    if not isinstance(schedules, list) or len(schedules) != n:
        raise ValueError(f"schedules must list {n} phase(s)")
    if not isinstance(updates, list) or len(updates) != n or not all(map(_count, updates)):
        raise ValueError(f"phase_updates must be {n} whole number(s) >= 0")
    for phase, mine, saved in zip(trainer.phases, trainer.schedules, schedules, strict=True):
        if (mine is None) != (saved is None):
            raise ValueError(f"phase {phase.name!r}: the schedule does not match the model's")
        if saved is not None and not (
            isinstance(saved, dict)
            and _count(saved.get("last_epoch"))
            and _count(saved.get("_step_count"))
            and isinstance(saved.get("_last_lr"), list)
            and all(isinstance(v, float) and math.isfinite(v) for v in saved["_last_lr"])
        ):
            raise ValueError(f"phase {phase.name!r}: the schedule state is damaged")
    return schedules, updates


def _load_optimizers(trainer: Trainer, tensors: dict[str, torch.Tensor], groups: list) -> None:
    """Every optimizer's per-parameter state (from ``optim.I.PID.NAME`` tensors) and groups."""
    for i, opt in enumerate(trainer.optimizers):
        per_param: dict[int, dict[str, torch.Tensor]] = {}
        prefix = f"optim.{i}."
        for k, v in tensors.items():
            if k.startswith(prefix):
                pid, name = k[len(prefix) :].split(".", 1)
                per_param.setdefault(int(pid), {})[name] = v
        opt.load_state_dict({"state": per_param, "param_groups": groups[i]})


def _resume_position(value: Any, tensors: dict[str, torch.Tensor]) -> InEpoch | None:
    """Where inside an epoch training stopped, with the partial sums of its loss terms."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("in_epoch is not a table")
    epoch, start, seen, terms = (value.get(k) for k in ("epoch", "start", "seen", "terms"))
    if not (_count(epoch) and _count(start) and _count(seen)) or not isinstance(terms, list):
        raise ValueError("in_epoch needs whole numbers epoch, start, seen and a list of terms")
    sums = {str(k): tensors[f"sums.{k}"] for k in terms}
    return epoch, start, sums, seen
