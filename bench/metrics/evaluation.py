"""``evaluate(model, data, options)``: every metric family for one trained model.

The model is used only through ``encode``, ``decode``, ``reconstruct``, ``sample(n, generator)``,
``posterior``, ``log_likelihood`` and the flags ``has_posterior``/``fits_prior``, so a plugin
model that honours that contract is measured exactly like the built-in ones. The result is a
flat ``dict[str, float]`` with the names of :mod:`bench.metrics.names`, plus a ``meta`` dict
saying how the numbers were made (backbone and its accuracy, sampler, sizes, device, threads).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from bench.data import ImageData
from bench.errors import UsageError
from bench.metrics import features, latent, samplers, sharpness, speed
from bench.metrics.generation import KID_SUBSET_SIZE, KID_SUBSETS, generation_metrics
from bench.metrics.names import FAMILIES, K_NEAREST, METRICS, min_n_samples
from bench.metrics.reconstruction import reconstruction_metrics

DEFAULT_N_SAMPLES = 10_000
#: the TF-Inception costs ~0.3 s per image on a CPU: fewer images there by default
DEFAULT_N_SAMPLES_INCEPTION_CPU = 500
IW_SUBSET_SEED = 1234  #: fixed, so that every run's nll_iw is on the same test images


@dataclass(frozen=True)
class MetricOptions:
    """How to evaluate; validated on construction (bad values are a :class:`UsageError`).

    ``n_samples`` None picks a default (10,000; 500 for ``inception`` on a CPU); the real set is
    the first ``min(n_samples, test size)`` test images. ``sampler`` None picks ``prior`` for
    models with a posterior and ``gaussian`` otherwise.
    """

    n_samples: int | None = None
    backbone: str = "domain"
    sampler: str | None = None
    iw_k: int = 500
    iw_n: int = 1000
    seed: int = 0
    k_nearest: int = K_NEAREST
    kid_subsets: int = KID_SUBSETS
    kid_subset_size: int = KID_SUBSET_SIZE
    batch_size: int = 500
    train_batch_size: int = 64
    families: tuple[str, ...] = FAMILIES
    cache_dir: str | None = None
    inception_weights: str | None = None

    def __post_init__(self) -> None:
        def positive(name: str, minimum: int = 1) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise UsageError(
                    f"metric option {name} must be an integer >= {minimum}, got {value!r}"
                )

        if self.n_samples is not None:
            k = self.k_nearest if isinstance(self.k_nearest, int) else K_NEAREST
            positive("n_samples", min_n_samples(k))
        for name in ("iw_k", "iw_n", "k_nearest", "kid_subsets", "kid_subset_size"):
            positive(name)
        positive("batch_size")
        positive("train_batch_size")
        positive("seed", 0)
        if self.backbone not in features.available():
            raise UsageError(
                f"unknown feature backbone {self.backbone!r}; "
                f"choose one of: {', '.join(features.available())}"
            )
        if self.sampler is not None:
            samplers.get(self.sampler)
        families = tuple(self.families)
        unknown = sorted(set(families) - set(FAMILIES))
        if unknown:
            raise UsageError(
                f"unknown metric families {unknown}; choose from: {', '.join(FAMILIES)}"
            )
        object.__setattr__(self, "families", families)

    def resolved_n_samples(self, device: torch.device) -> int:
        if self.n_samples is not None:
            return self.n_samples
        if self.backbone == "inception" and device.type == "cpu":
            return DEFAULT_N_SAMPLES_INCEPTION_CPU
        return DEFAULT_N_SAMPLES


def _trainer_step(model: torch.nn.Module, data: ImageData, batch_size: int) -> Callable:
    """One optimizer step of the real training harness, on a copy of the model (evaluation
    must not change the weights it reports on)."""
    from bench.trainer import TrainConfig, Trainer

    clone = copy.deepcopy(model)
    device = next(iter(clone.parameters())).device
    trainer = Trainer(
        clone, data, TrainConfig(batch_size=batch_size, device=str(device), quiet=True)
    )
    clone.train()
    return trainer._update


def evaluate(
    model: torch.nn.Module,
    data: ImageData,
    options: MetricOptions | None = None,
    train_step: Callable[[torch.Tensor], Any] | None = None,
) -> dict[str, Any]:
    """All requested metric families for ``model`` on ``data``; flat floats plus ``meta``.

    ``train_step(batch)`` is what ``train_samples_per_s`` times; by default one step of
    :class:`bench.trainer.Trainer` on a copy of the model.
    """
    opts = options or MetricOptions()
    device = next(iter(model.parameters())).device
    model.eval()
    has_posterior = bool(getattr(model, "has_posterior", False))
    sampler = opts.sampler or ("prior" if has_posterior else "gaussian")
    n = opts.resolved_n_samples(device)
    n_real = min(n, data.test_x.shape[0])
    test = data.test_x.cpu()
    real = test[:n_real]

    def on_device(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        return lambda x, *rest: fn(x.to(device), *(r.to(device) for r in rest))

    out: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    notes: list[str] = []
    meta: dict[str, Any] = {
        "dataset": data.name,
        "dataset_fingerprint": data.fingerprint(),
        "options": asdict(opts),
        "sampler": sampler,
        "n_real": n_real,
        "n_samples": n,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "has_posterior": has_posterior,
        "seconds": seconds,
        "notes": notes,
    }
    if opts.backbone == "inception" and device.type == "cpu" and opts.n_samples is None:
        notes.append(
            f"inception backbone on CPU: {n} images by default (~0.3 s/image); "
            "FID from few images is biased upwards, compare only at equal n"
        )

    t0 = time.perf_counter()
    recons = torch.empty(0)
    with torch.no_grad():
        if {"reconstruction", "generation", "sharpness"} & set(opts.families):
            values, recons = reconstruction_metrics(
                on_device(model.reconstruct), test, opts.batch_size, keep=n_real
            )
            if "reconstruction" in opts.families:
                out.update(values)
        seconds["reconstruction"] = time.perf_counter() - t0

        if "latent" in opts.families and has_posterior:
            t0 = time.perf_counter()
            gen = torch.Generator(device=device).manual_seed(opts.seed + 1)
            post, loglik = on_device(model.posterior), on_device(model.log_likelihood)
            out["kl"], out["elbo"] = latent.kl_elbo(post, loglik, test, opts.batch_size, gen)
            subset = torch.randperm(
                test.shape[0], generator=torch.Generator().manual_seed(IW_SUBSET_SEED)
            )
            iw_images = test[subset[: opts.iw_n]]
            out["nll_iw"] = latent.nll_iw(post, loglik, iw_images, opts.iw_k, gen)
            out["active_units"] = float(latent.active_units(post, test, batch_size=opts.batch_size))
            meta["iw"] = {"k": opts.iw_k, "n": iw_images.shape[0], "subset_seed": IW_SUBSET_SEED}
            seconds["latent"] = time.perf_counter() - t0

        samples = torch.empty(0)
        if {"generation", "sharpness"} & set(opts.families):
            t0 = time.perf_counter()
            train_codes: list[torch.Tensor] = []

            def codes() -> torch.Tensor:
                if not train_codes:
                    x = data.train_x.cpu()
                    enc = on_device(model.encode)
                    train_codes.append(
                        torch.cat(
                            [
                                enc(ImageData.batch(x, slice(s, s + opts.batch_size))).cpu()
                                for s in range(0, x.shape[0], opts.batch_size)
                            ]
                        )
                    )
                return train_codes[0]

            gen = torch.Generator(device=device).manual_seed(opts.seed)
            samples = samplers.get(sampler)(model, codes, n, gen).float().clamp(0, 1).cpu()
            seconds["sampling"] = time.perf_counter() - t0

        skip = _why_no_generation(opts, data, n_real) if "generation" in opts.families else None
        if skip:
            notes.append(skip)
        if "generation" in opts.families and not skip:
            t0 = time.perf_counter()
            net = features.build(
                opts.backbone,
                data,
                cache=opts.cache_dir,
                device=device,
                **({"weights": opts.inception_weights} if opts.backbone == "inception" else {}),
            )
            meta["backbone"] = {"name": opts.backbone, **getattr(net, "info", {})}
            real_f = features.extract(net, real, opts.batch_size)
            kw = dict(
                k=opts.k_nearest,
                kid_subsets=opts.kid_subsets,
                kid_subset_size=opts.kid_subset_size,
                seed=opts.seed,
            )
            out.update(generation_metrics(real_f, features.extract(net, samples), **kw))
            recon_f = features.extract(net, recons, opts.batch_size)
            out.update(generation_metrics(real_f, recon_f, suffix="_recon", **kw))
            meta["kid_subset_size"] = min(opts.kid_subset_size, max(2, min(n_real, n) // 2))
            seconds["generation"] = time.perf_counter() - t0

        if "sharpness" in opts.families:
            t0 = time.perf_counter()
            real_f32 = ImageData.batch(real, slice(None))
            out["sharpness_samples"] = sharpness.sharpness_ratio(samples, real_f32)
            out["sharpness_recon"] = sharpness.sharpness_ratio(recons, real_f32)
            out["hf_energy_samples"] = sharpness.high_frequency_ratio(samples, real_f32)
            out["hf_energy_recon"] = sharpness.high_frequency_ratio(recons, real_f32)
            meta["hf_cutoff"] = sharpness.HF_CUTOFF
            seconds["sharpness"] = time.perf_counter() - t0

    if "speed" in opts.families:
        t0 = time.perf_counter()
        step = train_step or _trainer_step(model, data, opts.train_batch_size)
        values, speed_meta = speed.speed_metrics(
            model.encode,
            model.decode,
            model.reconstruct,
            ImageData.batch(data.train_x.cpu(), slice(0, 4096)),
            device,
            train_step=step,
            train_batch_size=opts.train_batch_size,
        )
        out.update(values)
        meta["speed"] = speed_meta
        seconds["speed"] = time.perf_counter() - t0

    unknown = set(out) - set(METRICS)
    if unknown:  # pragma: no cover - a bug: every key must be in the vocabulary
        raise AssertionError(f"metric keys missing from bench.metrics.names: {sorted(unknown)}")
    result: dict[str, Any] = {k: float(v) for k, v in out.items()}
    result["meta"] = meta
    return result


def _why_no_generation(opts: MetricOptions, data: ImageData, n_real: int) -> str | None:
    """Why the generation metrics cannot be measured on ``data`` (a tiny or unlabelled image
    folder), as the note that replaces them; None when they can."""
    if n_real <= opts.k_nearest:
        return (
            f"generation metrics skipped: the test split has {n_real} image(s) and the k-NN "
            f"metrics need more than k = {opts.k_nearest}"
        )
    if opts.backbone == "domain" and not features.has_class_labels(data):
        return (
            "generation metrics skipped: the domain feature net needs class labels (2 or more "
            "sub-folders of an image folder); use --backbone inception"
        )
    return None


def format_table(scores: dict[str, Any]) -> str:
    """The flat metrics as an aligned two-column table, in vocabulary order."""
    rows = [(k, scores[k]) for k in METRICS if k in scores]
    rows += [(k, v) for k, v in scores.items() if k not in METRICS and k != "meta"]
    if not rows:
        return "(no metrics)"
    width = max(len(k) for k, _ in rows)
    lines = []
    for key, value in rows:
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
            text = f"{value:.0f}" if key == "active_units" else f"{value:.4g}"
        else:
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)
