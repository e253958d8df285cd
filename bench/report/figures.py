"""The report's figures (PNG), drawn with matplotlib/seaborn.

Every figure uses one colour per model label, fixed by :func:`palette` from the suite's order,
so "VAE is orange" holds across all of them. Figures that show images (samples,
reconstructions, interpolations, latent maps) rebuild each model from its run's artifacts
folder (``model.safetensors`` + ``config.json``) — the store holds numbers only. For each table
row the run with the lowest seed is drawn.

Figures are drawn on standalone :class:`matplotlib.figure.Figure` objects (no pyplot), so
building a report never touches a global backend or leaks figures. Sizes and dpi are modest so
each PNG stays well under 300 KB and the HTML report stays small.

If a figure cannot be drawn because a user-side input is missing (no artifacts folder, data
not found), a placeholder PNG that says why is written instead and the reason is returned, so
the report says which figure is incomplete rather than failing outright.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import seaborn as sns
import torch
from matplotlib.figure import Figure

from bench.errors import UsageError
from bench.report.collect import ReportData
from bench.report.columns import info
from bench.report.tables import Table

DPI = 90
N_SAMPLES = 36  # 6 × 6 grid per model
N_RECON = 10
N_INTERP = 9
N_LATENT = 1000

FIGURES: dict[str, tuple[str, str]] = {
    "samples": ("fig1_samples.png", "Samples from each model"),
    "reconstructions": ("fig2_reconstructions.png", "Test images (top) and reconstructions"),
    "interpolations": ("fig3_interpolations.png", "Latent interpolations between two test images"),
    "latent_map": ("fig4_latent_map.png", "2-D latent map of test images, coloured by label"),
    "learning_curves": ("fig5_learning_curves.png", "Test loss per epoch (mean ± std over seeds)"),
    "metric_bars": ("fig6_metric_bars.png", "Headline metrics (mean ± std over seeds)"),
    "quality_speed": ("fig7_quality_vs_speed.png", "Quality (FID) against training speed"),
}


@dataclass
class FigureFile:
    """One written PNG, its caption, and why it is a placeholder (None when it is real)."""

    key: str
    path: Path
    caption: str
    problem: str | None = None


@dataclass
class _Panel:
    """A table row with the model drawn for it."""

    name: str
    label: str
    dataset: str
    model: Any
    problem: str | None = None


@dataclass
class _Context:
    data: ReportData
    table: Table
    colors: dict[str, Any]
    panels: list[_Panel] = field(default_factory=list)
    datasets: dict[tuple[str, str | None], Any] = field(default_factory=dict)


def palette(labels: list[str]) -> dict[str, Any]:
    """One colour per model label, in suite order (colour-blind safe for up to 10 models)."""
    name = "colorblind" if len(labels) <= 10 else "husl"
    colors = sns.color_palette(name, max(len(labels), 1))
    return {label: colors[i] for i, label in enumerate(labels)}


# --------------------------------------------------------------------------------------------
# Loading models and data
# --------------------------------------------------------------------------------------------
def _load_panels(ctx: _Context) -> None:
    from bench.runio import load_run

    runs = ctx.data.runs.sort_values("seed", kind="stable")
    names = ctx.table.row_names()
    for name, key in zip(names, ctx.table.summary[ctx.data.keys].itertuples(index=False),
                         strict=True):  # fmt: skip
        mask = np.ones(len(runs), dtype=bool)
        for col, value in zip(ctx.data.keys, key, strict=True):
            mask &= (runs[col] == value).to_numpy()
        candidates = runs[mask]
        first = candidates.iloc[0]
        panel = _Panel(name, str(first["label"]), str(first["dataset"]), None)
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


def _dataset(ctx: _Context, name: str) -> Any:
    from bench import data as datasets

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


def _placeholder(message: str, title: str) -> Figure:
    fig = Figure(figsize=(6, 1.6))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.6, title, ha="center", va="center", fontsize=11, weight="bold")
    ax.text(0.5, 0.3, message, ha="center", va="center", fontsize=9, wrap=True, color="0.3")
    return fig


def _usable(ctx: _Context, dataset: str | None = None) -> list[_Panel]:
    panels = [p for p in ctx.panels if p.model is not None]
    if dataset is not None:
        panels = [p for p in panels if p.dataset == dataset]
    if not panels:
        problems = [p.problem for p in ctx.panels if p.problem]
        raise UsageError(problems[0] if problems else "no model could be loaded")
    return panels


def _datasets_of(ctx: _Context) -> list[str]:
    return list(dict.fromkeys(p.dataset for p in ctx.panels if p.model is not None)) or [""]


# --------------------------------------------------------------------------------------------
# The seven figures
# --------------------------------------------------------------------------------------------
@torch.inference_mode()
def fig_samples(ctx: _Context) -> Figure:
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
def fig_reconstructions(ctx: _Context, dataset: str) -> Figure:
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
def fig_interpolations(ctx: _Context, dataset: str) -> Figure:
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
        tt = t.to(z.device)[:, None]
        path = p.model.decode((1 - tt) * z[0] + tt * z[1])
        images = torch.cat([x[:1], path, x[1:]])
        _show(ax, _strip(images, len(images)))
        _row_label(ax, p.name, ctx.colors[p.label])
    axes[0].set_title("test image A  →  decoded path  →  test image B", fontsize=9)
    fig.tight_layout(h_pad=0.2)
    return fig


@torch.inference_mode()
def fig_latent_map(ctx: _Context, dataset: str) -> Figure:
    """4. Test-set codes in 2-D (first two principal components when the latent is wider)."""
    panels = _usable(ctx, dataset)
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
    if scatter is not None and (labels >= 0).any():
        cbar = fig.colorbar(scatter, ax=list(axes), ticks=range(10), fraction=0.03)
        cbar.set_label("label", fontsize=8)
        cbar.ax.tick_params(labelsize=7)
    return fig


def fig_learning_curves(ctx: _Context) -> Figure:
    """5. Test loss per epoch: mean line and a ±std band over seeds, one colour per model."""
    hist = ctx.data.history
    metric = "test_loss" if (hist["metric"] == "test_loss").any() else "train_loss"
    hist = hist[(hist["metric"] == metric) & hist["value"].notna()]
    if hist.empty:
        raise UsageError("no per-epoch losses (epoch-k test_loss/train_loss) in the store")
    datasets = list(dict.fromkeys(hist["dataset"]))
    fig = Figure(figsize=(5.2 * len(datasets) + 1.6, 3.6))
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    several_archs = hist["arch"].nunique() > 1
    for ax, name in zip(axes, datasets, strict=True):
        part = hist[hist["dataset"] == name]
        sns.lineplot(data=part, x="epoch", y="value", hue="label", palette=ctx.colors,
                     style="arch" if several_archs else None, errorbar="sd", marker="o",
                     markersize=4, ax=ax)  # fmt: skip
        values = part["value"]
        if (values > 0).all() and values.max() / values.min() > 50:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(info(metric).label)
        ax.set_title(name, fontsize=10)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def fig_metric_bars(ctx: _Context) -> Figure:
    """6. One bar chart per headline metric: mean with ±std error bars, from the table."""
    table = ctx.table
    if not table.columns:
        raise UsageError("no headline metrics recorded")
    ncols = min(4, len(table.columns))
    nrows = math.ceil(len(table.columns) / ncols)
    names = table.row_names()
    labels = list(table.summary["label"])
    fig = Figure(figsize=(3.3 * ncols, 2.9 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    for ax, metric in zip(axes, table.columns, strict=False):
        means = table.summary[f"{metric}_mean"].to_numpy(dtype=float)
        stds = np.nan_to_num(table.summary[f"{metric}_std"].to_numpy(dtype=float))
        xs = np.arange(len(names))
        ok = np.isfinite(means)
        ax.bar(xs[ok], means[ok], yerr=stds[ok], capsize=3,
               color=[ctx.colors[lbl] for lbl, k in zip(labels, ok, strict=True) if k])  # fmt: skip
        for x in xs[~ok]:
            ax.text(x, 0, "–", ha="center", va="bottom", color="0.4")
        ax.set_xticks(xs, names, rotation=30, ha="right", fontsize=8)
        ax.set_title(info(metric).header, fontsize=10)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes[len(table.columns) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def pareto_front(speed: np.ndarray, fid: np.ndarray) -> list[int]:
    """Indices of points no other point beats on both axes (faster *and* lower FID), sorted
    by speed."""
    idx = [i for i in range(len(speed)) if np.isfinite(speed[i]) and np.isfinite(fid[i])]
    front = [
        i
        for i in idx
        if not any(
            speed[j] >= speed[i] and fid[j] <= fid[i] and (speed[j] > speed[i] or fid[j] < fid[i])
            for j in idx
        )
    ]
    return sorted(front, key=lambda i: speed[i])


def fig_quality_speed(ctx: _Context) -> Figure:
    """7. FID against training samples/s, one point per model, the Pareto front drawn."""
    table = ctx.table
    s = table.summary
    if "fid_mean" not in s or "train_samples_per_s_mean" not in s:
        raise UsageError("needs both fid and train_samples_per_s in the store")
    fid = s["fid_mean"].to_numpy(dtype=float)
    speed = s["train_samples_per_s_mean"].to_numpy(dtype=float)
    if not (np.isfinite(fid) & np.isfinite(speed)).any():
        raise UsageError("no model has both fid and train_samples_per_s")
    fid_sd = np.nan_to_num(s["fid_std"].to_numpy(dtype=float))
    speed_sd = np.nan_to_num(s["train_samples_per_s_std"].to_numpy(dtype=float))
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.add_subplot()
    front = pareto_front(speed, fid)
    if len(front) > 1:
        ax.plot(speed[front], fid[front], "--", color="0.5", lw=1, zorder=1, label="Pareto front")
    for i, name in enumerate(table.row_names()):
        if not (np.isfinite(fid[i]) and np.isfinite(speed[i])):
            continue
        color = ctx.colors[s["label"].iloc[i]]
        ax.errorbar(speed[i], fid[i], xerr=speed_sd[i], yerr=fid_sd[i], fmt="o", ms=7,
                    color=color, capsize=3, zorder=2,
                    markeredgecolor="black" if i in front else color)  # fmt: skip
        ax.annotate(name, (speed[i], fid[i]), xytext=(5, 5), textcoords="offset points",
                    fontsize=8, color=color)  # fmt: skip
    ax.set_xlabel(f"{info('train_samples_per_s').header} (faster →)")
    ax.set_ylabel(f"{info('fid').header} (better ↓)")
    if len(front) > 1:
        ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
def _save(fig: Figure, path: Path) -> None:
    fig.savefig(
        path,
        dpi=DPI,
        format="png",
        bbox_inches="tight",
        pad_inches=0.1,
        metadata={"Software": None},
    )


def make_figures(data: ReportData, table: Table, out: Path) -> list[FigureFile]:
    """Draw all seven figures into ``out``; returns them in order with their captions.

    With several datasets in one suite the image figures (2–4) get one file per dataset
    (``fig2_reconstructions-<dataset>.png``) since images of different datasets don't share a
    grid.
    """
    sns.set_theme(style="whitegrid", context="paper")
    ctx = _Context(data, table, palette(data.labels))
    _load_panels(ctx)
    datasets = _datasets_of(ctx)
    jobs: list[tuple[str, str, Callable[[], Figure]]] = [("samples", "", lambda: fig_samples(ctx))]
    per_dataset = {
        "reconstructions": fig_reconstructions,
        "interpolations": fig_interpolations,
        "latent_map": fig_latent_map,
    }
    for key, fn in per_dataset.items():
        for ds in datasets:
            suffix = f"-{ds}" if len(datasets) > 1 else ""
            jobs.append((key, suffix, lambda fn=fn, ds=ds: fn(ctx, ds)))
    jobs += [
        ("learning_curves", "", lambda: fig_learning_curves(ctx)),
        ("metric_bars", "", lambda: fig_metric_bars(ctx)),
        ("quality_speed", "", lambda: fig_quality_speed(ctx)),
    ]
    written = []
    for key, suffix, draw in jobs:
        filename, caption = FIGURES[key]
        path = out / filename.replace(".png", f"{suffix}.png")
        if suffix:
            caption = f"{caption} ({suffix[1:]})"
        problem = None
        try:
            fig = draw()
        except (UsageError, OSError) as err:
            problem = str(err)
            fig = _placeholder(f"not drawn: {problem}", caption)
        _save(fig, path)
        written.append(FigureFile(key, path, caption, problem))
    return written


__all__ = ["FIGURES", "FigureFile", "make_figures", "palette", "pareto_front"]
