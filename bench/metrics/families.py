"""The built-in metric families, in evaluation and report order.

Each is a :class:`~aebench.metrics.family.MetricFamily`: its keys, its capability check, the
options it reads and its computation. The numerical work lives in the modules named in each
``compute`` (imported there, so declaring the families costs no torchmetrics import).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import torch

from aebench.data import ImageData
from aebench.metrics import backbones, features, latent, samplers, sharpness, speed
from aebench.metrics.context import EvalContext
from aebench.metrics.family import MetricFamily, MetricKey, register_family
from aebench.metrics.generation import generation_metrics

IW_SUBSET_SEED = 1234  #: fixed, so that every run's nll_iw is on the same test images


@register_family
class Reconstruction(MetricFamily):
    """How well test images come back through encode → decode (torchmetrics PSNR/SSIM)."""

    name = "reconstruction"
    options = ("batch_size",)
    keys = (
        MetricKey("recon_mse", "Recon MSE", "reconstruction mean squared error per pixel, "
                  "images in [0, 1]", False, headline=True),
        MetricKey("recon_bce", "Recon BCE", "reconstruction Bernoulli cross-entropy per image",
                  False, "nats"),
        MetricKey("psnr", "PSNR", "peak signal-to-noise ratio of reconstructions, mean over "
                  "images", True, "dB"),
        MetricKey("ssim", "SSIM", "structural similarity of reconstructions, mean over images",
                  True, headline=True),
    )  # fmt: skip

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        return dict(ctx.reconstruction()[0])


@register_family
class Latent(MetricFamily):
    """The encoder distribution: KL to the prior, ELBO, importance-weighted NLL (Burda et al.
    2015, K samples on a fixed test subset) and active units."""

    name = "latent"
    options = ("seed", "iw_k", "iw_n", "batch_size")
    version = 2  # 2: iw_gain, which runs stored before gain through `aebench eval --store`
    keys = (
        MetricKey("kl", "KL", "KL(q(z|x) ‖ p(z)) per test image", False, "nats", headline=True),
        MetricKey("elbo", "ELBO", "evidence lower bound per test image", True, "nats",
                  per_likelihood=True),
        MetricKey("nll_iw", "NLL (IW)", "importance-weighted negative log-likelihood bound",
                  False, "nats", headline=True, per_likelihood=True),
        MetricKey("iw_gain", "IW gain", "−ELBO − NLL (IW) on the NLL's images and draws: what "
                  "the K samples tighten the bound by (Burda 2015)", None, "nats",
                  per_likelihood=True),
        MetricKey("active_units", "Active units", "latent units with Cov_x(E_q[z_u|x]) > 0.01 "
                  "(Burda 2015)", True),
    )  # fmt: skip

    def applies_to(self, model: torch.nn.Module) -> bool:
        return bool(getattr(model, "has_posterior", False))

    def compute(self, ctx: EvalContext) -> dict[str, float]:

        opts, test = ctx.options, ctx.test
        gen = torch.Generator(device=ctx.device).manual_seed(opts.seed + 1)
        post, prior = ctx.on_device(ctx.model.posterior), ctx.model.prior()
        loglik = ctx.on_device(ctx.model.log_likelihood)
        out: dict[str, float] = {}
        out["kl"], out["elbo"] = latent.kl_elbo(post, prior, loglik, test, opts.batch_size, gen)
        order = torch.randperm(len(test), generator=torch.Generator().manual_seed(IW_SUBSET_SEED))
        iw_images = test[order[: opts.iw_n]]
        rows = latent.IW_ROWS_CUDA if ctx.device.type == "cuda" else latent.IW_ROWS_CPU
        out["nll_iw"], neg_elbo = latent.iw_bounds(
            post, prior, loglik, iw_images, opts.iw_k, gen, max_rows=rows
        )  # the images stay on the host: the rows per call go by the model's device
        out["iw_gain"] = neg_elbo - out["nll_iw"]
        out["active_units"] = float(latent.active_units(post, test, batch_size=opts.batch_size))
        ctx.meta["iw"] = {"k": opts.iw_k, "n": iw_images.shape[0], "subset_seed": IW_SUBSET_SEED}
        return out


_GENERATION = (
    ("fid", "FID", "Fréchet distance to the test split in the backbone's feature space", False),
    ("kid_mean", "KID", "kernel (cubic polynomial MMD²) distance to the test split, mean over "
     "subsets", False),
    ("kid_std", "KID std", "standard deviation of kid over subsets", None),
    ("precision", "Precision", "share of generated images inside the real k-NN manifold "
     "(Kynkäänniemi 2019)", True),
    ("recall", "Recall", "share of real images inside the generated k-NN manifold "
     "(Kynkäänniemi 2019)", True),
    ("density", "Density", "mean number of real k-NN balls per generated image / k "
     "(Naeem 2020)", True),
    ("coverage", "Coverage", "share of real images whose k-NN ball holds a generated image "
     "(Naeem 2020)", True),
)  # fmt: skip
_HEADLINE_GENERATION = ("fid", "kid_mean", "precision", "recall")


def per_sampler(keys: tuple[MetricKey, ...]) -> tuple[MetricKey, ...]:
    """``keys`` once per registered sampler, named ``KEY@SAMPLER`` (``fid@gmm``): how
    published tables report generation, e.g. Ghosh et al. (2020, Table 1) give an AE's FID
    from N(0, I) beside its FID from a GMM on the codes."""
    return tuple(
        MetricKey(f"{k.name}@{s}", f"{k.label} @{s}", f"{k.description}; {s} sampler",
                  k.higher_is_better, k.unit)
        for s in samplers.available()
        for k in keys
    )  # fmt: skip


@register_family
class Generation(MetricFamily):
    """Generated images (and, suffix ``_recon``, reconstructions) against the real test images
    in one feature space: FID, KID, precision/recall, density/coverage. Generated images come
    from every sampler the model declares (keys ``fid@prior``, ``fid@gmm``, ...); the plain
    keys (``fid``) repeat the model's default sampler's numbers for the headline table."""

    name = "generation"
    version = 2  #: 2: one set of keys per sampler (fid@prior, ...)
    options = ("n_samples", "backbone", "sampler", "seed", "k_nearest", "kid_subsets",
               "kid_subset_size", "batch_size", "inception_weights")  # fmt: skip
    base_keys = tuple(
        MetricKey(n, label, f"{text}; the model's default sampler", better,
                  headline=n in _HEADLINE_GENERATION)
        for n, label, text, better in _GENERATION
    )  # fmt: skip
    recon_keys = tuple(
        MetricKey(f"{n}_recon", f"{label} (recon)", f"{text} — for reconstructions", better)
        for n, label, text, better in _GENERATION
    )

    @property
    def keys(self) -> tuple[MetricKey, ...]:  # type: ignore[override]
        return self.base_keys + self.recon_keys + per_sampler(self.base_keys)

    def options_key(self, options: Any) -> str:
        """As every family's, but ``inception_weights`` counts only with the ``inception``
        backbone: other backbones never read the file, so naming one must not re-measure their
        runs nor split their report rows. The field stays in the key as null (what every key
        without weights holds), so keys already stored still match. With the ``domain``
        backbone the key names the domain net's recipe (``features.DOMAIN_VERSION``): results
        measured with an older net (one trained on the caller's thread count) are re-measured
        by ``aebench eval --store``."""
        weights = getattr(options, "inception_weights", None)
        if weights is not None and getattr(options, "backbone", None) != "inception":
            options = dataclasses.replace(options, inception_weights=None)
        key = super().options_key(options)
        if getattr(options, "backbone", None) != "domain":
            return key
        return json.dumps(
            {**json.loads(key), "domain_net": features.DOMAIN_VERSION}, sort_keys=True
        )

    def compute(self, ctx: EvalContext) -> dict[str, float]:

        skip = self.unavailable(ctx)
        if skip:
            ctx.notes.append(skip)
            return {}
        opts = ctx.options
        recons = ctx.reconstructions()
        weights = {"weights": opts.inception_weights} if opts.backbone == "inception" else {}
        net = features.build(
            opts.backbone, ctx.data, cache=opts.cache_dir, device=ctx.device, **weights
        )
        ctx.meta["backbone"] = {"name": opts.backbone, **getattr(net, "info", {})}
        real_f = features.real_features(
            net, ctx.real, opts.batch_size, backbones.cache_dir(opts.cache_dir)
        )
        kw = dict(k=opts.k_nearest, kid_subsets=opts.kid_subsets,
                  kid_subset_size=opts.kid_subset_size, seed=opts.seed)  # fmt: skip
        out: dict[str, float] = {}
        for sampler in ctx.samplers():
            gen_f = features.extract(net, ctx.samples(sampler), opts.batch_size)
            values = generation_metrics(real_f, gen_f, **kw)
            out.update({f"{k}@{sampler}": v for k, v in values.items()})
            if sampler == ctx.sampler:
                out.update(values)
        recon_f = features.extract(net, recons, opts.batch_size)
        out.update(generation_metrics(real_f, recon_f, suffix="_recon", **kw))
        ctx.meta["kid_subset_size"] = min(
            opts.kid_subset_size, max(2, min(ctx.n_real, ctx.n_samples) // 2)
        )
        return out

    @staticmethod
    def unavailable(ctx: EvalContext) -> str | None:
        """Why the metrics cannot be measured here (a tiny or unlabelled image folder), as the
        note that replaces them; None when they can."""

        k = ctx.options.k_nearest
        if ctx.n_real <= k:
            return (
                f"generation metrics skipped: the test split has {ctx.n_real} image(s) and the "
                f"k-NN metrics need more than k = {k}"
            )
        if ctx.options.backbone == "domain" and not features.has_class_labels(ctx.data):
            return (
                "generation metrics skipped: the domain feature net needs class labels (2 or "
                "more sub-folders of an image folder); use --backbone inception"
            )
        return None


@register_family
class Sharpness(MetricFamily):
    """Blur, as a ratio to the real test images (1.0 = as sharp as the data; higher is
    sharper): variance of the Laplacian and the high-frequency share of spectral energy."""

    name = "sharpness"
    version = 2  #: 2: one set of keys per sampler
    options = ("n_samples", "sampler", "seed", "batch_size")
    sample_keys = (
        MetricKey(
            "sharpness_samples",
            "Sharpness",
            "Laplacian variance of samples / that of "
            "test images (1.0 = as sharp); the model's default sampler",
            True,
            headline=True,
        ),
        MetricKey(
            "hf_energy_samples",
            "HF energy",
            "high-frequency spectral energy share of "
            "samples / that of test images; the model's default sampler",
            True,
        ),
    )
    recon_keys = (
        MetricKey("sharpness_recon", "Sharpness (recon)", "Laplacian variance of "
                  "reconstructions / that of test images", True),
        MetricKey("hf_energy_recon", "HF energy (recon)", "high-frequency spectral energy "
                  "share of reconstructions / of test images", True),
    )  # fmt: skip

    @property
    def keys(self) -> tuple[MetricKey, ...]:  # type: ignore[override]
        return self.sample_keys + self.recon_keys + per_sampler(self.sample_keys)

    def compute(self, ctx: EvalContext) -> dict[str, float]:

        recons, real = ctx.reconstructions(), ctx.real_images()
        ctx.meta["hf_cutoff"] = sharpness.HF_CUTOFF
        out = {
            "sharpness_recon": sharpness.sharpness_ratio(recons, real),
            "hf_energy_recon": sharpness.high_frequency_ratio(recons, real),
        }
        for sampler in ctx.samplers():
            samples = ctx.samples(sampler)
            values = {
                "sharpness_samples": sharpness.sharpness_ratio(samples, real),
                "hf_energy_samples": sharpness.high_frequency_ratio(samples, real),
            }
            out.update({f"{k}@{sampler}": v for k, v in values.items()})
            if sampler == ctx.sampler:
                out.update(values)
        return out


@register_family
class Speed(MetricFamily):
    """Throughput, latency and peak memory, timed on this machine (``meta`` says which)."""

    name = "speed"
    options = ("train_batch_size",)
    needs_grad = True
    keys = (
        MetricKey("train_samples_per_s", "Train samples/s", "training throughput, steady state "
                  "after warm-up", True, headline=True),
        MetricKey("encode_samples_per_s", "Encode samples/s", "encoder throughput at batch 256",
                  True),
        MetricKey("decode_samples_per_s", "Decode samples/s", "decoder throughput at batch 256",
                  True),
        MetricKey("latency_ms_p50", "Latency p50", "median wall time of one reconstruction "
                  "call", False, "ms"),
        MetricKey("latency_ms_p95", "Latency p95", "95th percentile wall time of one "
                  "reconstruction call", False, "ms"),
        MetricKey("peak_mem_mb", "Peak memory", "peak tensor memory of one training step above "
                  "the resting model", False, "MB", headline=True),
    )  # fmt: skip

    def compute(self, ctx: EvalContext) -> dict[str, float]:

        model, opts = ctx.model, ctx.options
        make_step = ctx.train_step_factory
        step = make_step(model, ctx.data, opts.train_batch_size) if make_step else None
        if step is None:
            ctx.notes.append(
                "train_samples_per_s and peak_mem_mb need a training step: pass "
                "train_step_factory=aebench.training.probe.step_on_copy to evaluate()"
            )
        values, ctx.meta["speed"] = speed.speed_metrics(
            model.encode,
            model.decode,
            model.reconstruct,
            ImageData.batch(ctx.data.train_x.cpu(), slice(0, 4096)),
            ctx.device,
            train_step=step,
            # a step that consumes several batches (FactorVAE's second one) is fed all of them,
            # so train samples/s counts every image a step reads, as the budget does
            train_batch_size=opts.train_batch_size * getattr(model, "batches_per_step", 1),
        )
        return values
