"""The report's image figures: samples, reconstructions, interpolations and latent maps.

Each rebuilds the models from their runs' artifacts folders (``model.safetensors`` +
``config.json``; the store holds numbers only), one per table row (the run with the lowest
seed), and draws on a standalone :class:`matplotlib.figure.Figure`. ``ctx`` is the report's
figure context (:class:`aebench.report.figures._Context`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from aebench.core.errors import UsageError
from aebench.metrics.samplers import code_shape

N_SAMPLES = 36  # 6 × 6 grid per model
N_RECON = 10
N_INTERP = 9
N_LATENT = 1000


@dataclass
class Panel:
    """A table row with the model drawn for it."""

    name: str
    label: str
    dataset: str
    model: Any
    problem: str | None = None


# --------------------------------------------------------------------------------------------
# Loading models and data
# --------------------------------------------------------------------------------------------
def _seed_order(seed: Any) -> tuple[int, Any]:
    """Numbers first, in order, then any other stored value (hand-edited) by its text."""
    if isinstance(seed, (int, float)) and seed == seed:
        return (0, seed)
    return (1, str(seed))


def load_panels(ctx: Any) -> None:
    from aebench.store.run_folder import load_run

    runs = ctx.data.runs.sort_values("seed", kind="stable", key=lambda s: s.map(_seed_order))
    names = ctx.table.row_names()
    for name, key in zip(names, ctx.table.summary[ctx.data.keys].itertuples(index=False),
                         strict=True):  # fmt: skip
        mask = np.ones(len(runs), dtype=bool)
        for col, value in zip(ctx.data.keys, key, strict=True):
            mask &= (runs[col] == value).to_numpy()
        candidates = runs[mask]
        first = candidates.iloc[0]
        panel = Panel(name, str(first["label"]), str(first["dataset"]), None)
        problems = []
        for _, run in candidates.iterrows():
            try:
                if not run["artifacts"]:
                    raise UsageError(f"run {run['run_name']} has no artifacts folder")
                panel.model, _ = load_run(run["artifacts"])
                panel.dataset = str(run["dataset"])
                break
            except UsageError as err:
                problems.append(str(err))
        if panel.model is None:
            panel.problem = problems[0] if problems else "no runs"
        ctx.panels.append(panel)


def _dataset(ctx: Any, name: str) -> Any:
    from aebench import data as datasets

    runs = ctx.data.runs[ctx.data.runs["dataset"] == name]
    data_dir = runs["data_dir"].dropna().iloc[0] if runs["data_dir"].notna().any() else None
    key = (name, data_dir)
    if key not in ctx.datasets:
        ctx.datasets[key] = datasets.load(name, data_dir)
    return ctx.datasets[key]


def _images_of(dataset: Any, index: list[int]) -> torch.Tensor:
    return dataset.batch(dataset.test_x.cpu(), torch.as_tensor(index))


def _pick_per_class(labels: torch.Tensor, n: int) -> list[int]:
    """The first test image of each class (then the next ones) — a varied, fixed selection."""
    labels = labels.cpu()
    chosen: list[int] = []
    classes = [int(c) for c in torch.unique(labels) if int(c) >= 0]
    for c in classes:
        hits = torch.nonzero(labels == c).flatten()
        if len(hits):
            chosen.append(int(hits[0]))
    rest = [i for i in range(len(labels)) if i not in set(chosen)]
    return sorted((chosen + rest)[:n])


def _to_numpy_image(grid: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] → what ``imshow`` wants: (H, W) for grey, (H, W, 3) for colour."""
    arr = grid.detach().float().clamp(0, 1).cpu().numpy()
    return arr[0] if arr.shape[0] == 1 else np.transpose(arr, (1, 2, 0))


def _strip(images: torch.Tensor, nrow: int) -> np.ndarray:
    from torchvision.utils import make_grid

    grid = make_grid(images.float().cpu(), nrow=nrow, padding=2, pad_value=1.0)
    if images.shape[1] == 1:
        grid = grid[:1]
    return _to_numpy_image(grid)


def _show(ax: Any, image: np.ndarray) -> None:
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1,
              interpolation="nearest")  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _row_label(ax: Any, text: str, color: Any = "black") -> None:
    ax.set_ylabel(text, rotation=0, ha="right", va="center", color=color, fontsize=10)


def _usable(ctx: Any, dataset: str | None = None) -> list[Panel]:
    panels = [p for p in ctx.panels if p.model is not None]
    if dataset is not None:
        panels = [p for p in panels if p.dataset == dataset]
    if not panels:
        problems = [p.problem for p in ctx.panels if p.problem]
        raise UsageError(problems[0] if problems else "no model could be loaded")
    return panels


def datasets_of(ctx: Any) -> list[str]:
    return list(dict.fromkeys(p.dataset for p in ctx.panels if p.model is not None)) or [""]


@torch.inference_mode()
def fig_samples(ctx: Any) -> Figure:
    """1. One panel of samples per model, side by side (same generator seed for all)."""
    panels = _usable(ctx)
    fig = Figure(figsize=(2.3 * len(panels), 2.7))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        gen = torch.Generator(device=panel.model.device).manual_seed(0)
        images = panel.model.sample(N_SAMPLES, generator=gen)
        _show(ax, _strip(images, int(math.sqrt(N_SAMPLES))))
        ax.set_title(panel.name, color=ctx.colors[panel.label], fontsize=10)
    fig.tight_layout()
    return fig


@torch.inference_mode()
def fig_reconstructions(ctx: Any, dataset: str) -> Figure:
    """2. The same test images, originals first, then each model's reconstruction."""
    panels = _usable(ctx, dataset)
    data = _dataset(ctx, dataset)
    x = _images_of(data, _pick_per_class(data.test_y, N_RECON))
    rows = [("original", "black", x)]
    for p in panels:
        rows.append((p.name, ctx.colors[p.label], p.model.reconstruct(x.to(p.model.device))))
    fig = Figure(figsize=(0.62 * len(x) + 1.6, 0.72 * len(rows) + 0.3))
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (name, color, images) in zip(axes, rows, strict=True):
        _show(ax, _strip(images, len(x)))
        _row_label(ax, name, color)
    fig.tight_layout(h_pad=0.2)
    return fig


@torch.inference_mode()
def fig_interpolations(ctx: Any, dataset: str) -> Figure:
    """3. Decode points on the straight line between two test images' codes, per model."""
    panels = _usable(ctx, dataset)
    data = _dataset(ctx, dataset)
    picks = _pick_per_class(data.test_y, 10)
    ends = _images_of(data, [picks[0], picks[-1]])
    t = torch.linspace(0, 1, N_INTERP)
    fig = Figure(figsize=(0.62 * (N_INTERP + 2) + 1.6, 0.72 * len(panels) + 0.3))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, p in zip(axes, panels, strict=True):
        x = ends.to(p.model.device)
        z = p.model.encode(x)
        tt = t.to(z.device).view(-1, *[1] * (z.dim() - 1))  # flat codes or a code grid
        path = p.model.decode((1 - tt) * z[0] + tt * z[1])
        images = torch.cat([x[:1], path, x[1:]])
        _show(ax, _strip(images, len(images)))
        _row_label(ax, p.name, ctx.colors[p.label])
    axes[0].set_title("test image A  →  decoded path  →  test image B", fontsize=9)
    fig.tight_layout(h_pad=0.2)
    return fig


@torch.inference_mode()
def fig_latent_map(ctx: Any, dataset: str) -> Figure:
    """4. Test-set codes in 2-D (first two principal components when the latent is wider).

    Only for flat codes: a model whose codes are a grid (``code_shape`` of more than one
    dimension) is left out, and the figure's title names it."""
    usable = _usable(ctx, dataset)
    panels = [p for p in usable if len(code_shape(p.model)) == 1]
    if not panels:
        raise UsageError("a latent map needs flat codes, and no model here has them")
    grids = [p.name for p in usable if p not in panels]
    data = _dataset(ctx, dataset)
    n = min(N_LATENT, len(data.test_x))
    x = _images_of(data, list(range(n)))
    labels = data.test_y[:n].cpu().numpy()
    fig = Figure(figsize=(3.2 * len(panels) + 0.9, 3.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    scatter = None
    for ax, p in zip(axes, panels, strict=True):
        z = p.model.encode(x.to(p.model.device)).float().cpu().numpy()
        how = "latent"
        if z.shape[1] > 2:
            centred = z - z.mean(0)
            _, _, vt = np.linalg.svd(centred, full_matrices=False)
            z = centred @ vt[:2].T
            how = f"PCA of {p.model.latent_dim}-d latent"
        elif z.shape[1] == 1:
            z = np.concatenate([z, np.zeros_like(z)], 1)
        scatter = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=4, alpha=0.7,
                             vmin=-0.5, vmax=9.5, linewidths=0, rasterized=True)  # fmt: skip
        ax.set_title(f"{p.name}\n({how})", color=ctx.colors[p.label], fontsize=9)
        ax.tick_params(labelsize=7)
    if grids:
        fig.suptitle(f"not drawn for {', '.join(grids)}: its codes are not flat", fontsize=8)
    if scatter is not None and (labels >= 0).any():
        cbar = fig.colorbar(scatter, ax=list(axes), ticks=range(10), fraction=0.03)
        cbar.set_label("label", fontsize=8)
        cbar.ax.tick_params(labelsize=7)
    return fig
