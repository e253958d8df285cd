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
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from aebench.core.errors import UsageError
from aebench.report.collect import ReportData
from aebench.report.columns import info
from aebench.report.figure_images import (
    Panel,
    datasets_of,
    fig_interpolations,
    fig_latent_map,
    fig_reconstructions,
    fig_samples,
    load_panels,
)
from aebench.report.tables import Table

DPI = 90

#: key → (file, caption, what to look for: one line under the figure)
FIGURES: dict[str, tuple[str, str, str]] = {
    "samples": ("fig1_samples.png", "Samples from each model (its default sampler)",
                "Look for sharp, varied digits: blur means low sharpness, the same few digits "
                "over and over mean low recall."),
    "reconstructions": ("fig2_reconstructions.png", "Test images (top) and reconstructions",
                        "Look for thin strokes and unusual shapes kept: blur here is the price "
                        "of the latent constraint (VAE, β-VAE)."),
    "interpolations": ("fig3_interpolations.png", "Latent interpolations between two test "
                       "images", "Every step should look like a digit: ghostly overlays mean "
                       "holes in the latent space between the two codes."),
    "latent_map": ("fig4_latent_map.png", "2-D latent map of test images, coloured by label",
                   "Look for one compact cluster per class; a VAE's map is a round blob near "
                   "N(0, I), an AE's spreads wherever the encoder put it."),
    "learning_curves": ("fig5_learning_curves.png", "Test loss per epoch (mean ± std over "
                        "seeds)", "Curves should have flattened by the last epoch: still "
                        "falling steeply means the budget is too short to compare."),
    "metric_bars": ("fig6_metric_bars.png", "Headline metrics (mean ± std over seeds)",
                    "Bars whose error bars overlap are not a difference these seeds can "
                    "show; see the Claims section for the tests."),
    "quality_speed": ("fig7_quality_vs_speed.png", "Quality (FID) against training speed",
                      "Lower right is better (low FID, fast); models on the dashed front are "
                      "beaten by no other on both."),
}  # fmt: skip


@dataclass
class FigureFile:
    """One written PNG, its caption, and why it is a placeholder (None when it is real)."""

    key: str
    path: Path
    caption: str
    problem: str | None = None
    hint: str = ""  #: what to look for, in one line


@dataclass
class _Context:
    data: ReportData
    table: Table
    colors: dict[str, Any]
    panels: list[Panel] = field(default_factory=list)
    datasets: dict[tuple[str, str | None], Any] = field(default_factory=dict)


def palette(labels: list[str]) -> dict[str, Any]:
    """One colour per model label, in suite order (colour-blind safe for up to 10 models)."""
    name = "colorblind" if len(labels) <= 10 else "husl"
    colors = sns.color_palette(name, max(len(labels), 1))
    return {label: colors[i] for i, label in enumerate(labels)}


def _placeholder(message: str, title: str) -> Figure:
    fig = Figure(figsize=(6, 1.6))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.6, title, ha="center", va="center", fontsize=11, weight="bold")
    ax.text(0.5, 0.3, message, ha="center", va="center", fontsize=9, wrap=True, color="0.3")
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


#: ``write(name, produce)``: make file ``name`` by ``produce(path)``; returns its path
Writer = Callable[[str, Callable[[Path], None]], Path]


def _file_part(suffix: str) -> str:
    """A dataset name as part of a file name: anything but letters, digits and ``.+@-``
    becomes ``_`` (a stored name may hold a slash or worse)."""
    return re.sub(r"[^A-Za-z0-9_.+@-]", "_", suffix)


def make_figures(
    data: ReportData, table: Table, out: Path, write: Writer | None = None
) -> list[FigureFile]:
    """Draw all seven figures into ``out``; returns them in order with their captions.

    With several datasets in one suite the image figures (2–4) get one file per dataset
    (``fig2_reconstructions-<dataset>.png``) since images of different datasets don't share a
    grid. ``write`` puts each file in place (the report's staging folder, which fsyncs it and
    names the file in a disk-full error); by default the PNG is saved straight into ``out``.
    """
    sns.set_theme(style="whitegrid", context="paper")
    ctx = _Context(data, table, palette(data.labels))
    load_panels(ctx)
    datasets = datasets_of(ctx)
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
    if write is None:

        def write(name: str, produce: Callable[[Path], None]) -> Path:
            produce(out / name)
            return out / name

    written = []
    for key, suffix, draw in jobs:
        filename, caption, hint = FIGURES[key]
        name = filename.replace(".png", f"{_file_part(suffix)}.png")
        if suffix:
            caption = f"{caption} ({suffix[1:]})"
        problem = None
        try:
            fig = draw()
        except (UsageError, OSError) as err:
            problem = str(err)
            fig = _placeholder(f"not drawn: {problem}", caption)
        path = write(name, lambda p, fig=fig: _save(fig, p))
        written.append(FigureFile(key, path, caption, problem, hint))
    return written


__all__ = ["FIGURES", "FigureFile", "make_figures", "palette", "pareto_front"]
