"""Vector quantisation of a code grid against a learned codebook (van den Oord, Vinyals &
Kavukcuoglu 2017, "Neural Discrete Representation Learning", section 3.1).

Each D-dimensional vector of the encoder's grid z_e is replaced by its nearest codebook entry
e_k (Euclidean), and the gradient of everything after it is copied to z_e unchanged (the
straight-through estimator: z_q = z_e + sg[e_k − z_e]). The codebook learns either

* from the *codebook loss* ‖sg[z_e] − e_k‖² (the paper's eq. 3, second term), or
* with ``ema = True`` by exponential moving averages of the vectors assigned to each entry
  (the paper's appendix A.1): N_k ← γN_k + (1 − γ)n_k, m_k ← γm_k + (1 − γ)Σ z_e, e_k = m_k / N_k,
  with N_k Laplace-smoothed as in the authors' Sonnet implementation, so a count that has
  decayed near zero does not blow e_k up. Only entries some vector chose in this batch are
  rewritten; the others keep their vectors while their statistics decay. Updates happen in
  training-mode forwards with gradients on, like BatchNorm's running statistics, never in
  evaluation.

Two departures from the paper keep aebench's small nets from using only a handful of entries
(docs/models.md has the measurements): the codebook starts as random vectors of the first
training batch's encoder outputs (the flag that says so is saved with the weights, so a resumed
run does not redo it), and an entry whose moving-average share of the vectors falls below
``restart_below`` / K is restarted at a random vector of the batch (Dhariwal et al. 2020's
random restarts; 0 turns them off).

The *commitment loss* β‖z_e − sg[e_k]‖² keeps the encoder near its codes. Both losses are summed
over the grid and averaged over the batch, as the reconstruction term is summed over pixels.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

#: Laplace smoothing of the EMA counts (the Sonnet implementation's epsilon)
EMA_EPSILON = 1e-5


def code_counts(indices: torch.Tensor, codes: int) -> torch.Tensor:
    """How many of ``indices`` chose each of ``codes`` entries (a float tensor: no host sync)."""
    flat = indices.reshape(-1)
    return torch.zeros(codes, device=flat.device).index_add_(
        0, flat, torch.ones_like(flat, dtype=torch.float)
    )


def codebook_usage(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From :func:`code_counts`: the perplexity exp(−Σ p_k log p_k) of the share p_k of the
    vectors that chose each entry (the number of entries when usage is uniform, 1 when one
    entry takes all), and the number of entries none chose. Tensors: no host sync."""
    p = counts / counts.sum()
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return entropy.exp(), (counts == 0).sum().float()


class VectorQuantizer(nn.Module):
    """The codebook (``codes`` × ``dim``) and the nearest-entry lookup."""

    def __init__(
        self,
        codes: int,
        dim: int,
        ema: bool = False,
        decay: float = 0.99,
        restart_below: float = 0.0,
    ) -> None:
        super().__init__()
        self.codes, self.dim, self.ema, self.decay = codes, dim, ema, decay
        self.restart_below = restart_below
        # Sonnet's variance-scaling uniform initialiser: entries of variance 1 / dim
        bound = math.sqrt(3.0 / dim)
        init = torch.empty(codes, dim).uniform_(-bound, bound)
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_count", torch.ones(codes))
            self.register_buffer("ema_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)
        #: each entry's share of the vectors, a moving average (decay γ) over training steps
        self.register_buffer("usage", torch.full((codes,), 1.0 / codes))
        #: 1 once the codebook was set from the first training batch (saved with the weights)
        self.register_buffer("initialised", torch.zeros(()))
        self._known_initialised: bool | None = None  # the buffer's value, read once per load

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """The index of each row's nearest entry (‖z‖² − 2 z·e + ‖e‖², argmin)."""
        book = self.codebook
        distances = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ book.T + book.pow(2).sum(1)[None, :]
        )
        return distances.argmin(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Entries for an (N, H, W) index grid, as an (N, dim, H, W) code grid."""
        return self.codebook[indices].permute(0, 3, 1, 2)

    def forward(self, z_e: torch.Tensor) -> dict[str, torch.Tensor]:
        """Quantise an (N, dim, H, W) grid: the straight-through codes ``z_q``, the ``indices``
        (N, H, W), their ``counts`` per entry, and the ``commitment`` and ``codebook`` losses
        (the latter zero with EMA)."""
        n, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
        training = self.training and torch.is_grad_enabled()
        if training and not self._is_initialised():
            self.initialise_from(flat.detach())
        indices = self.nearest(flat.detach())
        counts = code_counts(indices, self.codes)
        if training:
            self.track_usage(flat.detach(), counts)
        if self.ema and training:
            self.ema_update(flat.detach(), indices, counts)
        chosen = self.codebook[indices]
        commitment = (flat - chosen.detach()).pow(2).sum() / n
        codebook = (flat.detach() - chosen).pow(2).sum() / n if not self.ema else flat.new_zeros(())
        z_q = flat + (chosen - flat).detach()  # straight-through
        return {
            "z_q": z_q.view(n, h, w, d).permute(0, 3, 1, 2),
            "indices": indices.view(n, h, w),
            "counts": counts,
            "commitment": commitment,
            "codebook": codebook,
        }

    def _is_initialised(self) -> bool:
        if self._known_initialised is None:  # one host read after construction or a load
            self._known_initialised = bool(self.initialised)
        return self._known_initialised

    @torch.no_grad()
    def initialise_from(self, flat: torch.Tensor) -> None:
        """Set every entry to one of the batch's vectors, drawn at random (without replacement
        when the batch holds enough): codes start where the encoder's outputs are, so they are
        chosen at all."""
        if flat.shape[0] >= self.codes:
            rows = torch.randperm(flat.shape[0], device=flat.device)[: self.codes]
        else:
            rows = torch.randint(flat.shape[0], (self.codes,), device=flat.device)
        self.codebook.copy_(flat[rows])
        if self.ema:
            self.ema_sum.copy_(self.codebook)
            self.ema_count.fill_(1.0)
        self.initialised.fill_(1.0)
        self._known_initialised = True

    @torch.no_grad()
    def track_usage(self, flat: torch.Tensor, counts: torch.Tensor) -> None:
        """Update each entry's usage share from the batch's ``counts``; restart the entries
        whose share fell below ``restart_below`` / K at one of the batch's vectors, drawn at
        random (Dhariwal et al. 2020's random restarts): those entries were dead. Off when
        ``restart_below`` is 0."""
        self.usage.mul_(self.decay).add_(counts / flat.shape[0], alpha=1 - self.decay)
        if self.restart_below <= 0:
            return
        dead = self.usage < self.restart_below / self.codes
        rows = torch.randint(flat.shape[0], (self.codes,), device=flat.device)
        self.codebook.copy_(torch.where(dead[:, None], flat[rows], self.codebook))
        self.usage.copy_(torch.where(dead, 1.0 / self.codes, self.usage))
        if self.ema:
            self.ema_sum.copy_(torch.where(dead[:, None], flat[rows], self.ema_sum))
            self.ema_count.copy_(torch.where(dead, 1.0, self.ema_count))

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._known_initialised = None  # read the loaded buffer at the next training step

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        """One moving-average step of the counts and sums; rewrite the entries chosen now."""
        sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, flat)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + EMA_EPSILON) / (total + self.codes * EMA_EPSILON) * total
        updated = self.ema_sum / smoothed[:, None]
        self.codebook.copy_(torch.where((counts > 0)[:, None], updated, self.codebook))
