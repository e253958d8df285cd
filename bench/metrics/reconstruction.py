"""Reconstruction quality on the test split: ``recon_mse``, ``recon_bce``, ``psnr``, ``ssim``.

torchmetrics already maintains MSE, PSNR and SSIM, so they are used as they are; only the
per-image Bernoulli cross-entropy (the likelihood most MNIST papers report) is ours. All four
accumulate over batches (``update``/``compute``/``reset``), so the test split never has to be
reconstructed in one piece.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F
from torchmetrics import MeanSquaredError, Metric, MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from aebench.data import ImageData


class ReconBCE(Metric):
    """Mean over images of the Bernoulli negative log-likelihood summed over pixels, in nats.

    Reconstructions are probabilities in [0, 1]; ``F.binary_cross_entropy`` clamps log(0) at
    −100, so a saturated pixel costs a finite 100 nats instead of infinity.
    """

    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.add_state(
            "total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        nll = F.binary_cross_entropy(preds.float().clamp(0, 1), target.float(), reduction="none")
        self.total += nll.flatten(1).sum(1).double().sum()
        self.count += preds.shape[0]

    def compute(self) -> torch.Tensor:
        return self.total / self.count


def reconstruction_collection() -> MetricCollection:
    """The four reconstruction metrics under their flat names.

    ``recon_mse`` is per pixel; ``psnr`` is averaged per image (``dim=(1, 2, 3)``), the way
    papers report it, rather than computed from the pooled MSE.
    """
    return MetricCollection(
        {
            "recon_mse": MeanSquaredError(),
            "recon_bce": ReconBCE(),
            "psnr": PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)),
            "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
        },
        compute_groups=False,
    )


@torch.no_grad()
def reconstruction_metrics(
    reconstruct: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    batch_size: int = 500,
    keep: int = 0,
) -> tuple[dict[str, float], torch.Tensor]:
    """Metrics of ``reconstruct`` over uint8 ``images``, plus the first ``keep`` reconstructions
    (float, on the CPU) so that generation and sharpness metrics can reuse them."""
    metrics = reconstruction_collection()
    kept: list[torch.Tensor] = []
    n_kept = 0
    for start in range(0, images.shape[0], batch_size):
        x = ImageData.batch(images, slice(start, start + batch_size))
        x_hat = reconstruct(x).float().clamp(0, 1)
        metrics.update(x_hat.cpu(), x.cpu())
        if n_kept < keep:
            kept.append(x_hat[: keep - n_kept].cpu())
            n_kept += kept[-1].shape[0]
    values = {k: float(v) for k, v in metrics.compute().items()}
    shape = (0, *images.shape[1:])
    return values, torch.cat(kept) if kept else torch.empty(shape)
