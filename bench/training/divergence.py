"""Divergence: a loss term that became NaN or infinite stops the run, naming the term and the
step, without a host sync per step."""

from __future__ import annotations

import math

import torch


class DivergenceError(RuntimeError):
    """A loss term became NaN or infinite; the message names model, epoch, step and term."""


class FirstNonFinite:
    """Remembers, on the device, the first step at which a loss term was NaN or infinite and
    which terms were: a few tiny tensor ops per step and one read per epoch, so divergence is
    reported at the exact step and term without a host sync in the hot loop."""

    def __init__(self) -> None:
        self.keys: list[str] | None = None
        self.step: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def update(self, terms: dict[str, torch.Tensor], step: int) -> None:
        if self.keys is None:
            self.keys = list(terms)
        stacked = torch.stack([terms[k].detach().float() for k in self.keys])
        if self.step is None or self.values is None:
            self.step = torch.full((), -1, dtype=torch.long, device=stacked.device)
            self.values = torch.zeros_like(stacked)
        fresh = (self.step < 0) & ~torch.isfinite(stacked).all()
        self.step = torch.where(fresh, step, self.step)
        self.values = torch.where(fresh, stacked, self.values)

    def first(self) -> tuple[int, str, float] | None:
        """``(step, term, value)`` of the first non-finite term (not the total if a specific
        term went bad), or None."""
        if self.step is None or self.values is None or self.keys is None:
            return None
        step = int(self.step)
        if step < 0:
            return None
        values = self.values.tolist()
        bad = [k for k, v in zip(self.keys, values, strict=True) if not math.isfinite(v)]
        key = next((k for k in bad if k != "loss"), bad[0])
        return step, key, values[self.keys.index(key)]
