"""One function per figure. Figures take arrays and tables, never models or files.

Images use the grey colour map on a fixed 0-1 range; every figure's title says what it
shows. Each function returns a matplotlib Figure; :func:`save` writes and closes it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fgbg.metrics.rates import STRATA  # noqa: E402

CMAP = "gray"
IMAGE_RANGE = {"cmap": CMAP, "vmin": 0.0, "vmax": 1.0, "interpolation": "nearest"}
METRIC_LABELS = {"tpr": "TPR", "fpr": "FPR", "auroc": "AUROC"}


def save(fig, path, dpi: int = 100) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def _suptitle(fig, text: str) -> None:
    """The figure title, wrapped to the figure's width."""
    chars = max(int(fig.get_figwidth() * 11), 30)
    fig.suptitle("\n".join(textwrap.wrap(text, chars)), fontsize=10)


def blank_axes(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def reconstruction_grid(
    images: np.ndarray,
    foreground: np.ndarray,
    target: np.ndarray | None = None,
    background: np.ndarray | None = None,
    title: str = "",
):
    """Rows: test images; columns: x, foreground output, g(x), background output (the
    last two only for models with a background branch). Thesis figures 3.1-3.3."""
    columns = {"input x": images, "foreground output": foreground}
    if target is not None and background is not None:
        columns |= {"background target g(x)": target, "background output": background}
    rows = len(images)
    fig, axes = plt.subplots(
        rows,
        len(columns),
        figsize=(2 * len(columns), 2 * rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    for j, (name, stack) in enumerate(columns.items()):
        for i in range(rows):
            ax = axes[i, j]
            ax.imshow(stack[i], **IMAGE_RANGE)
            blank_axes(ax)
            if i == 0:
                ax.set_title(name, fontsize=9)
    _suptitle(fig, title or "Reconstructions of test images (decoder means, z = posterior mean)")
    return fig


def decomposition(images, foreground, background, cells, disks, title: str = ""):
    """Rows: test images; columns: x, the foreground layer f, the background layer b, and
    the true active cells and active disks (the thesis figures 3.1-3.3 for a layered model)."""
    columns = {
        "input x": images,
        "foreground layer f": foreground,
        "background layer b": background,
        "true active cells": cells,
        "true active disks": disks,
    }
    rows = len(images)
    fig, axes = plt.subplots(
        rows, len(columns), figsize=(2 * len(columns), 2 * rows + 0.6), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for j, (name, stack) in enumerate(columns.items()):
        for i in range(rows):
            axes[i, j].imshow(stack[i], **IMAGE_RANGE)
            blank_axes(axes[i, j])
            if i == 0:
                axes[i, j].set_title(name, fontsize=9)
    _suptitle(fig, title or "Decomposition of test images (layers at z = posterior mean)")
    return fig


def latent_traversal(labels: list[str], images: np.ndarray, title: str = ""):
    """Foreground output for one-hot latent states, one row per dimension, +a then -a.
    Thesis figures 3.4-3.6."""
    rows = len(images) // 2
    fig, axes = plt.subplots(
        rows, 2, figsize=(4.4, 2.2 * rows + 0.6), squeeze=False, layout="constrained"
    )
    for k, (label, image) in enumerate(zip(labels, images, strict=True)):
        ax = axes[k // 2, k % 2]
        ax.imshow(image, **IMAGE_RANGE)
        blank_axes(ax)
        ax.set_xlabel(label, fontsize=8)
    _suptitle(fig, title or "Foreground output for one-hot latent states")
    return fig


ELBOS = {
    "ELBO1 (foreground)": ("ll_fg", ("kl_z1", "kl_z")),
    "ELBO2 (background)": ("ll_bg", ("kl_z2",)),
}


def training_curves(history: pd.DataFrame, title: str = ""):
    """Loss, each ELBO and each KL term per epoch, one panel each (training set solid,
    validation split dashed when the history has it)."""
    panels = {"loss": "loss (minimised)"}
    for name, (ll, kls) in ELBOS.items():
        kl = next((k for k in kls if k in history), None)
        if ll not in history or kl is None:
            continue
        history = history.assign(**{name: history[ll] - history[kl]})
        if f"val_{ll}" in history and f"val_{kl}" in history:
            history = history.assign(**{f"val_{name}": history[f"val_{ll}"] - history[f"val_{kl}"]})
        panels[name] = name
    panels |= {c: f"KL term {c[3:]}" for c in history.columns if c.startswith("kl_")}
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.2 * len(panels), 3.0), squeeze=False, layout="constrained"
    )
    for ax, (column, name) in zip(axes[0], panels.items(), strict=True):
        ax.plot(history["epoch"], history[column], "-o", color="0.1", ms=3, label="train")
        if f"val_{column}" in history:
            ax.plot(
                history["epoch"],
                history[f"val_{column}"],
                "--s",
                color="0.55",
                ms=3,
                label="validation",
            )
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    _suptitle(fig, title or "Training curves (per-image means per epoch)")
    return fig


def _grouped_bars(ax, table: pd.DataFrame, x_key: str, x_values: list, series: list[str]):
    """Bars of `mean` with 95 % CI error bars: one group per x value, one shade per entry
    of `series` (the `model` column), NaN left empty."""
    width = 0.8 / max(len(series), 1)
    shades = np.linspace(0.15, 0.75, max(len(series), 1))
    for m, (name, shade) in enumerate(zip(series, shades, strict=True)):
        rows = table[table["model"] == name].set_index(x_key).reindex(x_values)
        x = np.arange(len(x_values)) + (m - (len(series) - 1) / 2) * width
        err = np.vstack([rows["mean"] - rows["ci95_low"], rows["ci95_high"] - rows["mean"]])
        ax.bar(
            x,
            rows["mean"],
            width,
            color=str(shade),
            edgecolor="black",
            lw=0.5,
            label=name,
            yerr=np.nan_to_num(err),
            capsize=2,
        )
    ax.set_ylim(0, 1.05)
    ax.set_xticks(np.arange(len(x_values)))


def _grid(rows: int, columns: int, width: float = 3.4, height: float = 2.6):
    return plt.subplots(
        rows,
        columns,
        figsize=(width * columns + 0.6, height * rows + 0.6),
        squeeze=False,
        layout="constrained",
        sharey=True,
    )


def summary_figure(summary: pd.DataFrame, metrics=("tpr", "fpr", "auroc"), strata=STRATA):
    """Bars: mean over seeds per stratum (x), method (shade), scenario (column) and metric
    (row); error bars: 95 % t-interval across seeds."""
    scenarios = list(dict.fromkeys(summary["scenario"]))
    models = list(dict.fromkeys(summary["model"]))
    fig, axes = _grid(len(metrics), len(scenarios))
    for i, metric in enumerate(metrics):
        for j, scenario in enumerate(scenarios):
            ax = axes[i, j]
            rows = summary[(summary["scenario"] == scenario) & (summary["metric"] == metric)]
            _grouped_bars(ax, rows, "stratum", list(strata), models)
            ax.set_xticklabels([s.replace("_", "\n", 1) for s in strata], fontsize=7)
            if i == 0:
                ax.set_title(f"scenario {scenario}", fontsize=9)
            if j == 0:
                ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    axes[0, -1].legend(fontsize=7, title="method", title_fontsize=7)
    _suptitle(
        fig, "Per-cell detection on the test split, by stratum: mean over seeds, 95 % CI error bars"
    )
    return fig


SEPARATION_PANELS = (
    ("inside_bg_on", "auroc", "AUROC, cells under an active disk"),
    ("inside_bg_on", "fpr", "FPR at the threshold, cells under an active disk"),
    ("active_disks", "leakage", "leakage: foreground on active-disk pixels without a cell"),
)


def separation_figure(summary: pd.DataFrame, panels=SEPARATION_PANELS):
    """Every method (x) side by side per scenario (column) on the separation questions
    (rows): are cells under an active disk told apart, are they called on regardless, how
    much of the disk is in the foreground output. Means over seeds, 95 % CI."""
    scenarios = list(dict.fromkeys(summary["scenario"]))
    models = list(dict.fromkeys(summary["model"]))
    fig, axes = _grid(len(panels), len(scenarios), width=0.55 * len(models) + 1.2)
    for i, (stratum, metric, label) in enumerate(panels):
        for j, scenario in enumerate(scenarios):
            ax = axes[i, j]
            rows = summary[
                (summary["scenario"] == scenario)
                & (summary["stratum"] == stratum)
                & (summary["metric"] == metric)
            ].assign(x=lambda t: t["model"])
            for model in models:  # one bar per method: x and shade both name the method
                _grouped_bars(ax, rows[rows["model"] == model], "x", models, [model])
            ax.set_xticklabels(models, fontsize=7, rotation=45, ha="right")
            if i == 0:
                ax.set_title(f"scenario {scenario}", fontsize=9)
            if j == 0:
                ax.set_ylabel("\n".join(textwrap.wrap(label, 28)), fontsize=8)
    _suptitle(fig, "Separation on the test split, every method: mean over seeds, 95 % CI")
    return fig


def cells_figure(cells: pd.DataFrame, stratum: str = "inside_bg_on", metrics=("fpr", "auroc")):
    """Per-cell rates in one stratum (summary_cells.csv): cells (x, labelled with their
    disk coverage, fully covered first) by method (shade), per scenario (column)."""
    scenarios = list(dict.fromkeys(cells["scenario"]))  # a scenario without any: empty panel
    models = list(dict.fromkeys(cells["model"]))
    cells = cells[cells["stratum"] == stratum]
    widest = max([cells[cells["scenario"] == s]["cell"].nunique() for s in scenarios] + [1])
    fig, axes = _grid(len(metrics), len(scenarios), width=0.5 * widest * len(models) / 3 + 1.5)
    for j, scenario in enumerate(scenarios):
        here = cells[cells["scenario"] == scenario]
        coverage = here.groupby("cell")["disk_coverage"].first().sort_values(ascending=False)
        labels = [f"{k}\n{'full' if c >= 1 else f'{100 * c:.0f} %'}" for k, c in coverage.items()]
        for i, metric in enumerate(metrics):
            ax = axes[i, j]
            _grouped_bars(ax, here[here["metric"] == metric], "cell", list(coverage.index), models)
            ax.set_xticklabels(labels, fontsize=7)
            if i == 0:
                ax.set_title(f"scenario {scenario}", fontsize=9)
            if j == 0:
                ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            if i == len(metrics) - 1:
                ax.set_xlabel("cell (share of its pixels inside a disk)", fontsize=8)
    axes[0, -1].legend(fontsize=7, title="method", title_fontsize=7)
    _suptitle(
        fig,
        f"Per-cell rates in {stratum} on the test split, fully and partially covered cells "
        "apart: mean over seeds, 95 % CI",
    )
    return fig


def cell_map(
    cell_mask: np.ndarray,
    disk_mask: np.ndarray,
    per_cell: dict[str, pd.DataFrame],
    disk_labels: list[str] | None = None,
    title: str = "",
):
    """The layout with each cell painted (and labelled) with its rate, disks outlined.

    per_cell: {row name: table with columns cell, tpr, fpr} (means over seeds); one row of
    panels (TPR, FPR) per entry.
    """
    height, width = cell_mask.shape[1:]
    fig, axes = plt.subplots(
        len(per_cell),
        2,
        figsize=(7.2, 3.9 * len(per_cell) + 0.9),
        squeeze=False,
        layout="constrained",
    )
    for i, (name, table) in enumerate(per_cell.items()):
        table = table.set_index("cell")
        for j, metric in enumerate(("tpr", "fpr")):
            ax = axes[i, j]
            canvas = np.full((height, width), np.nan)
            for k, mask in enumerate(cell_mask):
                canvas[mask.astype(bool)] = table.loc[k, metric] if k in table.index else np.nan
            # pixels outside cells (and NaN rates) in a light blue-grey
            cmap = plt.get_cmap(CMAP).with_extremes(bad="#d9e6f2")
            ax.imshow(canvas, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            for d, mask in enumerate(disk_mask):
                ax.contour(mask.astype(float), levels=[0.5], colors="tab:red", linewidths=1)
                if disk_labels:
                    ys, xs = np.nonzero(mask)
                    ax.text(
                        xs.mean(),
                        ys.mean(),
                        disk_labels[d],
                        color="tab:red",
                        fontsize=7,
                        ha="center",
                        va="center",
                    )
            for k, mask in enumerate(cell_mask):
                ys, xs = np.nonzero(mask)
                value = table.loc[k, metric] if k in table.index else np.nan
                ax.text(
                    xs.mean(),
                    ys.min() - 0.8,
                    f"{k}: {value:.2f}",
                    fontsize=6,
                    ha="center",
                    va="bottom",
                    color="black",
                    bbox={"fc": "white", "ec": "none", "alpha": 0.7, "pad": 0.5},
                )
            blank_axes(ax)
            ax.set_title(f"{METRIC_LABELS[metric]} per cell ({name})", fontsize=9)
    _suptitle(fig, title or "Per-cell rates; disks outlined")
    return fig
