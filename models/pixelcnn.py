"""A gated PixelCNN over grids of discrete codes (van den Oord, Kalchbrenner, Vinyals, Espeholt,
Graves & Kavukcuoglu 2016, "Conditional Image Generation with PixelCNN Decoders"): the
autoregressive prior VQ-VAE learns over its code grid in a second stage (van den Oord, Vinyals
& Kavukcuoglu 2017, section 3.2).

p(c) = Π_{i,j} p(c_ij | c before (i, j) in raster order), each factor a softmax over the K
codes. Two stacks keep the receptive field causal without the original PixelCNN's blind spot:

* the **vertical** stack sees the rows above: its k × k convolution is cut to the upper
  ⌈k/2⌉ rows (rows i − ⌊k/2⌋ … i), and it reaches the horizontal stack only shifted down by one
  row, so position (i, j) hears from rows < i;
* the **horizontal** stack sees the row so far: a 1 × (⌊k/2⌋ + 1) convolution over columns
  j − ⌊k/2⌋ … j, with its input shifted right by one column in the first layer ("mask A": not
  the code being predicted) and not after ("mask B"), plus a residual connection after the
  first layer.

Each layer's output is the gated unit tanh(a) ⊙ σ(b) of its two halves. Cutting kernels and
shifting, rather than multiplying weights by a mask, computes only what is used.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.functional import cross_entropy, pad

from aebench.models.base import GenerativeAutoencoder, Phase


def _down(x: torch.Tensor) -> torch.Tensor:
    """Shift a feature map one row down (row 0 becomes zeros)."""
    return pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def _right(x: torch.Tensor) -> torch.Tensor:
    """Shift a feature map one column right (column 0 becomes zeros)."""
    return pad(x, (1, 0, 0, 0))[:, :, :, :-1]


def _gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One gated layer of both stacks; ``first`` selects mask A (see the module docstring)."""

    def __init__(self, channels: int, kernel: int, first: bool) -> None:
        super().__init__()
        half = kernel // 2
        self.first = first
        self.half = half
        self.vertical = nn.Conv2d(channels, 2 * channels, (half + 1, kernel), padding=(half, half))
        self.horizontal = nn.Conv2d(channels, 2 * channels, (1, half + 1), padding=(0, half))
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows, cols = v.shape[-2:]
        v_pre = self.vertical(v)[:, :, :rows, :]  # row i: input rows i − half … i
        h_in = _right(h) if self.first else h
        h_pre = self.horizontal(h_in)[:, :, :, :cols]  # column j: input columns j − half … j
        h_pre = h_pre + self.v_to_h(_down(v_pre))  # rows above only
        h_new = self.h_out(_gate(h_pre))
        return _gate(v_pre), h_new if self.first else h + h_new


class GatedPixelCNN(nn.Module):
    """Logits of p(c_ij | c before (i, j)) for a batch of code grids: (N, H, W) indices in
    [0, K) → (N, K, H, W)."""

    def __init__(self, codes: int, channels: int = 64, depth: int = 8, kernel: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(codes, channels)
        layers = [GatedLayer(channels, kernel, first=i == 0) for i in range(depth)]
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, codes, 1)
        )

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return self.from_embedded(self.embed(indices).permute(0, 3, 1, 2))

    def from_embedded(self, e: torch.Tensor) -> torch.Tensor:
        """The logits for already embedded grids (N, channels, H, W): the entry point a test
        differentiates to check that no position hears from itself or from later ones."""
        v = h = e
        for layer in self.layers:
            v, h = layer(v, h)
        return self.head(h)


class CodePrior(GenerativeAutoencoder):
    """A learned prior over code grids of shape ``grid`` (rows, columns) with ``codes`` values,
    trained as a stage of its own by the harness: ``loss`` is the negative log-likelihood of a
    batch of grids in nats (summed over positions, averaged over the batch), beside the uniform
    prior's H·W·log K for reference."""

    def __init__(
        self, codes: int, grid: tuple[int, int], channels: int, depth: int, lr: float
    ) -> None:
        super().__init__(codes=codes, grid=list(grid), channels=channels, depth=depth, lr=lr)
        self.codes, self.grid, self.lr = codes, tuple(grid), lr
        self.latent_dim = math.prod(self.grid)
        self.net = GatedPixelCNN(codes, channels, depth)

    def loss(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.net(indices)
        nll = cross_entropy(logits, indices, reduction="none").flatten(1).sum(1).mean()
        return {"loss": nll, "code_nll": nll}

    def uniform_nll(self) -> float:
        """The negative log-likelihood of any grid under uniform, independent codes."""
        return math.prod(self.grid) * math.log(self.codes)

    @torch.no_grad()
    def sample_indices(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` grids drawn position by position in raster order (H·W forward passes)."""
        rows, cols = self.grid
        device = self.device
        out = torch.zeros(n, rows, cols, dtype=torch.long, device=device)
        where = generator.device if generator is not None else device
        for i in range(rows):
            for j in range(cols):
                probs = torch.softmax(self.net(out)[:, :, i, j].float(), dim=1)
                pick = torch.multinomial(probs.to(where), 1, generator=generator)
                out[:, i, j] = pick.squeeze(1).to(device)
        return out

    def phases(self) -> list[Phase]:
        return [Phase("prior", list(self.parameters()), "loss", lr=self.lr)]

    def extra_repr(self) -> str:
        return f"codes={self.codes}, grid={self.grid}"
