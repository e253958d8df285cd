"""The metric vocabulary: every flat key ``evaluate`` can return, defined once.

The same names travel from here to ``metrics.json``, the store and the report columns. Keys of
generation metrics computed on reconstructions end in ``_recon``; the bare names are about
samples.
"""

from __future__ import annotations

#: nearest neighbours of precision/recall and density/coverage (Kynkäänniemi et al. 2019: k = 5)
K_NEAREST = 5


def min_n_samples(k_nearest: int = K_NEAREST) -> int:
    """Fewest generated (and real) images the generation metrics accept: a k-NN manifold needs
    more than k points, and KID's subsets need a few more than that."""
    return 2 * k_nearest + 2


#: the metric families ``evaluate`` runs, in order (``aebench eval --skip`` takes these)
FAMILIES = ("reconstruction", "latent", "generation", "sharpness", "speed")

_GENERATION = {
    "fid": "Fréchet distance to the test split in the backbone's feature space (lower is better)",
    "kid_mean": "kernel (cubic polynomial MMD²) distance to the test split, mean over subsets",
    "kid_std": "standard deviation of kid over subsets",
    "precision": "share of generated images inside the real k-NN manifold (Kynkäänniemi 2019)",
    "recall": "share of real images inside the generated k-NN manifold (Kynkäänniemi 2019)",
    "density": "mean number of real k-NN balls per generated image / k (Naeem 2020)",
    "coverage": "share of real images whose k-NN ball holds a generated image (Naeem 2020)",
}

METRICS: dict[str, str] = {
    "recon_mse": "reconstruction mean squared error per pixel, images in [0, 1]",
    "recon_bce": "reconstruction Bernoulli cross-entropy per image, nats",
    "psnr": "peak signal-to-noise ratio of reconstructions, dB, mean over images",
    "ssim": "structural similarity of reconstructions, mean over images",
    "kl": "KL(q(z|x) ‖ p(z)) per test image, nats (models with a posterior only)",
    "elbo": "evidence lower bound per test image, nats (models with a posterior only)",
    "nll_iw": "importance-weighted negative log-likelihood bound, nats (posterior models only)",
    "active_units": "latent units with Cov_x(E_q[z_u|x]) > 0.01 (Burda 2015; posterior only)",
    **_GENERATION,
    **{f"{k}_recon": f"{v} — for reconstructions" for k, v in _GENERATION.items()},
    "sharpness_samples": "Laplacian variance of samples / that of test images (1.0 = as sharp)",
    "sharpness_recon": "Laplacian variance of reconstructions / that of test images",
    "hf_energy_samples": "high-frequency spectral energy share of samples / that of test images",
    "hf_energy_recon": "high-frequency spectral energy share of reconstructions / of test images",
    "train_samples_per_s": "training throughput, steady state after warm-up",
    "encode_samples_per_s": "encoder throughput at batch 256",
    "decode_samples_per_s": "decoder throughput at batch 256",
    "latency_ms_p50": "median wall time of one reconstruction call, ms",
    "latency_ms_p95": "95th percentile wall time of one reconstruction call, ms",
    "peak_mem_mb": "peak tensor memory of one training step above the resting model, MB",
}
