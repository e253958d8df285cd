"""What each flat metric name means to a reader: its label, better direction and unit.

The report is the only place that needs to know whether a number should go up or down, so the
knowledge lives here, keyed by the same flat names the metrics write into the store. A metric
the report does not know is still shown (in ``table.csv``) but never bolded or flagged: guessing
a direction would risk calling an improvement a regression.
"""

from __future__ import annotations

from dataclasses import dataclass

LOWER = "lower"
HIGHER = "higher"


@dataclass(frozen=True)
class MetricInfo:
    """How one metric is shown: column label, better direction (or None), unit."""

    name: str
    label: str
    better: str | None = None
    unit: str = ""

    @property
    def arrow(self) -> str:
        """↓ when lower is better, ↑ when higher is better, nothing when neither."""
        return {LOWER: "↓", HIGHER: "↑"}.get(self.better or "", "")

    @property
    def header(self) -> str:
        """The column header with its arrow, e.g. ``FID ↓``."""
        return f"{self.label} {self.arrow}".strip()


_KNOWN = [
    MetricInfo("recon_mse", "Recon MSE", LOWER),
    MetricInfo("recon_bce", "Recon BCE", LOWER, "nats"),
    MetricInfo("psnr", "PSNR", HIGHER, "dB"),
    MetricInfo("ssim", "SSIM", HIGHER),
    MetricInfo("kl", "KL", LOWER, "nats"),
    MetricInfo("elbo", "ELBO", HIGHER, "nats"),
    MetricInfo("nll_iw", "NLL (IW)", LOWER, "nats"),
    MetricInfo("active_units", "Active units", HIGHER),
    MetricInfo("fid", "FID", LOWER),
    MetricInfo("kid_mean", "KID", LOWER),
    MetricInfo("kid_std", "KID std", None),
    MetricInfo("precision", "Precision", HIGHER),
    MetricInfo("recall", "Recall", HIGHER),
    MetricInfo("density", "Density", HIGHER),
    MetricInfo("coverage", "Coverage", HIGHER),
    MetricInfo("sharpness_samples", "Sharpness", HIGHER),
    MetricInfo("sharpness_recon", "Sharpness (recon)", HIGHER),
    MetricInfo("train_samples_per_s", "Train samples/s", HIGHER),
    MetricInfo("encode_samples_per_s", "Encode samples/s", HIGHER),
    MetricInfo("decode_samples_per_s", "Decode samples/s", HIGHER),
    MetricInfo("latency_ms_p50", "Latency p50", LOWER, "ms"),
    MetricInfo("latency_ms_p95", "Latency p95", LOWER, "ms"),
    MetricInfo("peak_mem_mb", "Peak memory", LOWER, "MB"),
    # training history (phase epoch-k)
    MetricInfo("test_loss", "Test loss", LOWER),
    MetricInfo("train_loss", "Train loss", LOWER),
]
# generation metrics computed on reconstructions instead of samples (``fid_recon``, ...)
_KNOWN += [
    MetricInfo(f"{m.name}_recon", f"{m.label} (recon)", m.better)
    for m in _KNOWN
    if m.name in ("fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage")
]
METRICS: dict[str, MetricInfo] = {m.name: m for m in _KNOWN}

#: The main table's columns, in the order the issue lists them.
HEADLINE: tuple[str, ...] = (
    "recon_mse",
    "ssim",
    "kl",
    "nll_iw",
    "fid",
    "kid_mean",
    "precision",
    "recall",
    "sharpness_samples",
    "train_samples_per_s",
    "peak_mem_mb",
)


def info(name: str) -> MetricInfo:
    """The :class:`MetricInfo` for ``name``; an unknown metric gets its own name, no direction."""
    return METRICS.get(name, MetricInfo(name, name, None))


def better(name: str) -> str | None:
    """``"lower"``, ``"higher"`` or None (no preferred direction / unknown metric)."""
    return info(name).better
