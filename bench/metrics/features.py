"""Feature backbones: the spaces in which FID, KID, precision/recall and density/coverage live.

Two backbones, behind one small name registry (:func:`register_backbone`, :func:`build`):

* ``domain`` (default) — a small CNN classifier trained on the dataset's own train split and
  cached on disk, keyed by the dataset's content hash. ImageNet features describe digits and
  clothes poorly, so a network that knows the domain is the more sensitive judge; its test
  accuracy is reported beside the scores so a weak judge is visible.
* ``inception`` — the TF-ported FID InceptionV3, so numbers are comparable with published FIDs
  (its own module, :mod:`aebench.metrics.inception`).

Every backbone is an ``nn.Module`` mapping float images in [0, 1], shape (N, C, H, W), to
(N, F) features, with ``num_features`` and an ``info`` dict (recorded in ``meta``).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aebench.core.errors import UsageError
from aebench.core.weights import read_state_dict, write_state_dict
from aebench.data import ImageData
from aebench.metrics.backbones import BACKBONES, cache_dir, register_backbone
from aebench.metrics.inception import InceptionFeatures

#: bump when the domain network or its training recipe changes: old cache entries are ignored
#: (3: trained on one thread, so its weights no longer depend on the trainer's thread count)
DOMAIN_VERSION = 3
#: the threads the domain net trains on, whatever the caller's: a convolution's backward pass
#: sums in an order set by the thread count, so other counts give other weights and other FIDs
#: (docs/metrics.md)
DOMAIN_THREADS = 1
#: torch-fidelity's own download, if a user has it in the torch hub cache


#: the width of a plugin backbone's features is known only once it is built: assume Inception's
UNKNOWN_FEATURE_WIDTH = 2048


def feature_width(name: str) -> int:
    """How many features backbone ``name`` gives per image, known without building it (so
    memory can be checked before a domain net trains): the built-ins' widths, else
    :data:`UNKNOWN_FEATURE_WIDTH`."""
    widths = {"domain": DomainNet.num_features, "inception": InceptionFeatures.num_features}
    return widths.get(name, UNKNOWN_FEATURE_WIDTH)


def build(
    name: str,
    data: ImageData | None,
    cache: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    **options: Any,
) -> nn.Module:
    """The backbone ``name`` ready for ``data``'s images (eval mode, no gradients)."""
    net = BACKBONES.get(name)(data, cache=cache_dir(cache), device=torch.device(device), **options)
    return net.eval().requires_grad_(False)


@torch.no_grad()
def extract(net: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Features of ``images`` (uint8, or float in [0, 1]) as float64, computed in batches."""
    device = next(iter(net.parameters()), torch.empty(0)).device
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size]
        x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
        f = net(x.to(device)).double().cpu()
        if not torch.isfinite(f).all():
            raise UsageError(
                "the feature backbone gave NaN or infinite features (damaged weights, or images "
                "that are not finite)"
            )
        out.append(f)
    if not out:
        return torch.empty(0, getattr(net, "num_features", 0), dtype=torch.float64)
    return torch.cat(out)


# -- real-image features, cached ---------------------------------------------------------------
REAL_CACHE_VERSION = 1


def backbone_identity(net: nn.Module) -> str:
    """A content hash of the network (class, every parameter and buffer): two nets with the
    same identity compute the same features. Kept on the module after the first call."""
    known = getattr(net, "_aebench_identity", None)
    if isinstance(known, str):
        return known
    h = hashlib.sha256(type(net).__qualname__.encode())
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    net._aebench_identity = h.hexdigest()  # type: ignore[assignment]
    return net._aebench_identity  # type: ignore[return-value]


def real_features(
    net: nn.Module, images: torch.Tensor, batch_size: int = 500, cache: Path | None = None
) -> torch.Tensor:
    """:func:`extract` of a real image set, cached on disk under ``cache/real-features``.

    The key hashes the images' bytes (so another split, subset or dataset misses), the
    backbone's identity (:func:`backbone_identity`: its weights and class) and the
    preprocessing version, so a suite that evaluates many runs against the same test images
    extracts them once. The file is written atomically; a damaged one is a miss, rebuilt.
    """
    if cache is None:
        return extract(net, images, batch_size)
    h = hashlib.sha256(f"real-v{REAL_CACHE_VERSION}".encode())
    h.update(str((images.dtype, tuple(images.shape))).encode())
    h.update(images.cpu().contiguous().numpy().tobytes())
    h.update(backbone_identity(net).encode())
    path = cache / "real-features" / f"{h.hexdigest()[:32]}.safetensors"
    if path.is_file():
        try:
            cached = read_state_dict(path, "real-feature cache entry")[0].get("features")
            ok = cached is not None and cached.shape[0] == images.shape[0]
            if ok and torch.isfinite(cached).all():
                return cached.double()
        except UsageError:
            pass  # damaged: recompute and overwrite
    feats = extract(net, images, batch_size)
    write_state_dict(path, {"features": feats}, {"n": int(images.shape[0])})
    return feats


# -- domain backbone --------------------------------------------------------------------------
class DomainNet(nn.Module):
    """Three conv blocks and a 128-unit hidden layer; its penultimate layer is the feature.

    Sized to train in about a minute per MNIST epoch on two CPU cores, yet reach ≥ 98 % on MNIST
    and ≥ 88 % on Fashion-MNIST; adaptive pooling makes it fit any image size.
    """

    num_features = 128

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.trunk = nn.Sequential(
            block(channels, 16),
            block(16, 32),
            block(32, 64),
            nn.AdaptiveAvgPool2d(3),
            nn.Flatten(),
            nn.Linear(64 * 9, self.num_features),
            nn.ReLU(),
        )
        self.head = nn.Linear(self.num_features, n_classes)
        self.info: dict[str, Any] = {}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features for images in [0, 1]."""
        return self.trunk(x)


@torch.no_grad()
def accuracy(net: DomainNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy on uint8 ``images``."""
    net.eval()
    correct = 0
    for start in range(0, images.shape[0], 1000):
        x = ImageData.batch(images, slice(start, start + 1000))
        pred = net.logits(x).argmax(1)
        correct += int((pred == labels[start : start + 1000]).sum())
    return correct / max(images.shape[0], 1)


def has_class_labels(data: ImageData) -> bool:
    """Whether ``data`` can train a domain net: every training image labelled, 2+ classes."""
    labels = data.train_y
    return bool(labels.numel()) and not bool((labels < 0).any()) and int(labels.max()) >= 1


@torch.enable_grad()  # callers may hold no_grad/inference mode; training needs autograd
def train_domain_net(
    data: ImageData,
    epochs: int | None = None,
    min_samples: int = 40_000,
    batch_size: int = 128,
    seed: int = 0,
) -> DomainNet:
    """Train a :class:`DomainNet` on ``data.train_x`` and record its test accuracy.

    In-memory uint8 tensors sliced by a seeded permutation (no DataLoader): the data loader, not
    the network, would otherwise dominate on CPU. Small datasets get more epochs (at least
    ``min_samples`` images seen) so that mnist-5k trains as well as it can: on mnist-5k, 40k
    images (10 epochs) reach 97.8 % test accuracy, as many as 150k did. It trains on
    :data:`DOMAIN_THREADS` threads, so its weights are the same whatever the caller runs on.
    """
    labels = data.train_y
    if not has_class_labels(data):
        raise UsageError(
            f"the 'domain' feature backbone needs class labels (2 or more classes; an image "
            f"folder's sub-folders) and dataset {data.name!r} has none; use --backbone inception"
        )
    n_classes = int(labels.max()) + 1
    data = data.to("cpu")
    n = data.train_x.shape[0]
    if epochs is None:
        epochs = max(3, math.ceil(min_samples / n))
    with torch.random.fork_rng(devices=[]):
        # the CPU generator only: torch.manual_seed would also reseed every GPU's stream,
        # which fork_rng(devices=[]) does not restore
        torch.default_generator.manual_seed(seed)
        net = DomainNet(data.image_shape[0], n_classes)
    threads = torch.get_num_threads()
    torch.set_num_threads(DOMAIN_THREADS)
    try:
        _fit_domain_net(net, data, epochs, batch_size, seed)
    finally:
        torch.set_num_threads(threads)
    acc = accuracy(net, data.test_x, data.test_y) if data.test_y.numel() else float("nan")
    net.info = {"test_accuracy": acc, "epochs": epochs, "version": DOMAIN_VERSION}
    return net.eval()


def _fit_domain_net(
    net: DomainNet, data: ImageData, epochs: int, batch_size: int, seed: int
) -> None:
    """AdamW with a one-cycle schedule over seeded permutations of the training images."""
    labels, n = data.train_y, data.train_x.shape[0]
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(n / batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            x = ImageData.batch(data.train_x, idx)
            loss = nn.functional.cross_entropy(net.logits(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()


def domain_cache_path(data: ImageData, cache: Path) -> Path:
    return cache / "domain" / f"{data.fingerprint()}-v{DOMAIN_VERSION}.safetensors"


def _cached_domain_net(path: Path, channels: int) -> DomainNet | None:
    """The domain net saved at ``path``, or None when the entry is absent, corrupt, hostile
    or stale (a cache miss: the caller retrains and rewrites it atomically)."""
    if not path.is_file():
        return None
    try:
        state, meta = read_state_dict(path, "domain-net cache entry")
        net = DomainNet(channels, int(meta["n_classes"]))
        net.load_state_dict(state)
        net.info = {**dict(meta["info"]), "cached": True}
    except (UsageError, RuntimeError, KeyError, TypeError, ValueError):
        return None
    return net


@register_backbone("domain")
def domain_backbone(
    data: ImageData | None, cache: Path, device: torch.device, **options: Any
) -> nn.Module:
    """The cached domain classifier for ``data`` (trained now if the cache has none)."""
    if data is None:
        raise UsageError("the 'domain' feature backbone needs a dataset to train on")
    path = domain_cache_path(data, cache)
    net = _cached_domain_net(path, data.image_shape[0])
    if net is not None:
        return net.to(device)
    net = train_domain_net(data, **options)
    meta = {"n_classes": net.head.out_features, "info": net.info}
    write_state_dict(path, net.state_dict(), meta)
    net.info["cached"] = False
    return net.to(device)
