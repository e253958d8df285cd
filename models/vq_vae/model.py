"""VQ-VAE with a learned prior (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete
Representation Learning", NeurIPS).

**Stage 1.** The encoder maps an image to a grid of D-dimensional vectors (7 × 7 for MNIST),
each replaced by its nearest entry of a codebook of K vectors (:mod:`.quantizer`); the decoder
reconstructs from the quantised grid. The loss is the reconstruction term plus the codebook
loss ‖sg[z_e] − e‖² (unless the codebook learns by moving averages, ``ema``) plus the commitment
loss β‖z_e − sg[e]‖², with the straight-through gradient through the quantiser. Codebook usage
is logged every epoch: ``perplexity`` (K when every entry is used equally) and ``dead_codes``
(entries no vector of the batch chose; read the test row, whose batches hold ~24,500 vectors).

**Stage 2.** A gated PixelCNN (:mod:`aebench.models.pixelcnn`) learns the distribution of the
training images' code grids, with the stage-1 weights frozen: its own budget, seed,
checkpoint and resume (``Stage``). ``sample`` draws grids from it and decodes them (sampler
``prior``); sampler ``uniform-codes`` decodes grids of independent, uniform codes, the ablation
the learned prior is measured against.

Defaults, and where they come from:
- K = 512, β = 0.25 and, with ``ema``, decay γ = 0.99: the paper's;
- the codebook is built as the authors' Sonnet implementation builds it (uniform, variance
  1/D), and then overwritten by the first batch's encoder outputs (below);
- D is the run's ``latent_dim`` (16 in aebench's suites; the paper's image models use larger
  grids and D up to 256).

Where aebench departs, and why:
- the nets are aebench's ``conv`` encoder and decoder with the linear layers replaced by a 1 × 1
  convolution to D channels and a 3 × 3 one back (``models/backbones.py``), not the paper's
  residual stacks of 256 channels: the comparison holds the architecture fixed. The ``mlp``
  architecture has no grid and is refused;
- the reconstruction term is the Bernoulli likelihood every aebench autoencoder trains with;
- stage 1 trains with Adam at lr 1e-3 (``lr``, every aebench autoencoder's), not the paper's
  2e-4, so the comparison holds the optimizer fixed;
- the codebook starts from the first batch's encoder outputs and dead entries are restarted
  (``restart_below``; :mod:`.quantizer` and docs/models.md say why: without them these nets
  used about 5 of the 512 entries);
- the prior is 8 gated layers of 64 channels with 3 × 3 kernels, so that every position of a
  7 × 7 grid hears from every earlier one (the paper's priors are larger, for larger grids);
  it trains for half the run's budget (``prior_budget``) with Adam at lr 1e-3: on mnist-5k
  its held-out NLL was lowest after 15 epochs and rose after 20, as it overfit the 4,000
  training grids (docs/models.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from aebench.models.backbones import GridDecoder, build_grid_encoder, grid_shape
from aebench.models.base import GenerativeAutoencoder, Phase, Stage, recon_nll
from aebench.models.pixelcnn import CodePrior
from aebench.models.registry import register
from aebench.models.vq_vae.config import VQVAEConfig
from aebench.models.vq_vae.quantizer import VectorQuantizer, codebook_usage


@register("vq-vae")
class VQVAE(GenerativeAutoencoder):
    family = "discrete"
    default_sampler = "prior"
    samplers = ("prior", "uniform-codes")
    archs = ("conv",)
    config_class = VQVAEConfig

    def __init__(
        self, encoder: nn.Module | None = None, decoder: nn.Module | None = None, **kwargs: Any
    ) -> None:
        cfg = VQVAEConfig.from_kwargs("vq-vae", kwargs)
        super().__init__(**cfg.to_json())
        self.cfg = cfg
        self.latent_dim = cfg.latent_dim  # the codebook's dimension D
        self.grid = grid_shape(cfg.image_shape)
        self.encoder = encoder or build_grid_encoder(cfg.image_shape, cfg.latent_dim, cfg.width)
        self.decoder = decoder or GridDecoder(cfg.latent_dim, cfg.image_shape, cfg.width)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.latent_dim, cfg.ema, cfg.ema_decay,
                                         cfg.restart_below)  # fmt: skip
        self.code_prior = CodePrior(cfg.codebook_size, self.grid, cfg.prior_channels,
                               cfg.prior_depth, cfg.prior_lr)  # fmt: skip

    @property
    def code_shape(self) -> tuple[int, ...]:
        return (self.cfg.latent_dim, *self.grid)

    @property
    def codebook_size(self) -> int:
        """K: how many values each position of the index grid takes."""
        return self.cfg.codebook_size

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The quantised code grid (N, D, H, W)."""
        return self.quantizer(self.encoder(x))["z_q"]

    def code_indices(self, x: torch.Tensor) -> torch.Tensor:
        """The index grid (N, H, W) of images: what the prior stage learns."""
        return self.quantizer(self.encoder(x))["indices"]

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images for an (N, H, W) index grid."""
        return self.decode(self.quantizer.lookup(indices))

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        q = self.quantizer(self.encoder(x))
        recon = recon_nll(self.decode_logits(q["z_q"]), x, self.cfg.recon, self.cfg.sigma).mean()
        perplexity, dead = codebook_usage(q["counts"])
        total = recon + q["codebook"] + self.cfg.commitment * q["commitment"]
        usage = {"perplexity": perplexity, "dead_codes": dead}
        return {"loss": total, "recon": recon, "commitment": q["commitment"],
                "codebook": q["codebook"], **usage}  # fmt: skip

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.decode_indices(self.code_prior.sample_indices(n, generator))

    def phases(self) -> list[Phase]:
        """Stage 1: one Adam at the run's ``lr`` over everything but the prior."""
        return [dataclasses.replace(phase, lr=self.cfg.lr) for phase in super().phases()]

    def stages(self) -> list[Stage]:
        return [
            Stage("prior", self.code_prior, inputs=self.code_indices, budget=self.cfg.prior_budget)
        ]
