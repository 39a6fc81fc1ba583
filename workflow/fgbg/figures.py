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
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fgbg.metrics.rates import STRATA  # noqa: E402
from fgbg.targets import CEILING, TARGETS  # noqa: E402

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


def latent_traversal(labels: list[str], images, title: str = ""):
    """Decoder outputs for one-hot latent states: one row per traversed dimension, +a then
    -a for each output. `images` (2 * dims, H, W) is the foreground output alone (thesis
    figures 3.4-3.6); a dict {output name: (2 * dims, h, w)} adds a pair of columns per
    output (a background layer beside the foreground one)."""
    outputs = images if isinstance(images, dict) else {"foreground output": images}
    rows = len(labels) // 2
    columns = max(2 * len(outputs), 2)
    fig, axes = plt.subplots(
        max(rows, 1),
        columns,
        figsize=(2.2 * columns, 2.2 * max(rows, 1) + 0.6),
        squeeze=False,
        layout="constrained",
    )
    for o, (name, stack) in enumerate(outputs.items()):
        for k, (label, image) in enumerate(zip(labels, stack, strict=True)):
            ax = axes[k // 2, 2 * o + k % 2]
            ax.imshow(image, **IMAGE_RANGE)
            blank_axes(ax)
            ax.set_xlabel(label, fontsize=8)
            if k < 2:
                ax.set_title(name, fontsize=9)
    if not rows:  # nothing small enough to traverse: say so rather than draw empty panels
        for ax in axes.flat:
            ax.axis("off")
        axes[0, 0].text(0, 0.5, "no latent block to traverse", fontsize=9)
    _suptitle(fig, title or "Foreground output for one-hot latent states")
    return fig


ELBOS = {
    "ELBO1 (foreground)": ("ll_fg", ("kl_z1", "kl_z")),
    "ELBO2 (background)": ("ll_bg", ("kl_z2",)),
}


def _with_elbos(history: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """The history with an ELBO column per branch it has, and the panels to draw."""
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
    return history, panels


def training_curves(history: pd.DataFrame, title: str = ""):
    """Loss, each ELBO and each KL term per epoch, one panel each; one thin line per run
    (the `seed` column, when there is one) in its own colour, training set solid and
    validation split dashed (when the history has it). Runs may have different numbers of
    epochs (early stopping)."""
    if "seed" not in history:
        history = history.assign(seed=0)
    history, panels = _with_elbos(history)
    seeds = list(dict.fromkeys(history["seed"]))
    palette = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.2 * len(panels), 3.0), squeeze=False, layout="constrained"
    )
    for ax, (column, name) in zip(axes[0], panels.items(), strict=True):
        for s, seed in enumerate(seeds):
            run = history[history["seed"] == seed]
            colour = palette[s % len(palette)]
            ax.plot(run["epoch"], run[column], "-", color=colour, lw=1)
            if f"val_{column}" in run:
                ax.plot(run["epoch"], run[f"val_{column}"], "--", color=colour, lw=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [
        Line2D([], [], color=palette[s % len(palette)], lw=1, label=f"seed {seed}")
        for s, seed in enumerate(seeds)
    ] + [
        Line2D([], [], color="0.2", ls="-", lw=1, label="training set"),
        Line2D([], [], color="0.2", ls="--", lw=1, label="validation split"),
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=7, frameon=False)
    _suptitle(fig, title or "Training curves (per-image means per epoch)")
    return fig


# One colour per method, the same in every figure: trained models take the saturated
# qualitative colours, in the order of the methods; references (no training) a separate
# family of pale colours, hatched.
MODEL_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#17becf", "#bcbd22")  # fmt: skip
REFERENCE_COLOURS = ("#bdbdbd", "#c6dbef", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fcbba1")
REFERENCE_HATCH = "///"


def method_styles(methods, references=()) -> dict[str, dict]:
    """{method: bar style} for `methods` in order: a colour from MODEL_COLOURS for each
    trained model, a hatched REFERENCE_COLOURS one for each name in `references`."""
    models = [m for m in methods if m not in references]
    refs = [m for m in methods if m in references]
    styles = {
        m: {"color": MODEL_COLOURS[i % len(MODEL_COLOURS)], "hatch": None}
        for i, m in enumerate(models)
    }
    styles |= {
        m: {"color": REFERENCE_COLOURS[i % len(REFERENCE_COLOURS)], "hatch": REFERENCE_HATCH}
        for i, m in enumerate(refs)
    }
    return {m: styles[m] for m in methods}


def _method_legend(fig, styles: dict[str, dict], references=(), runs=False, targets=False):
    """The methods' colours outside the axes (right), models first, then references."""
    handles = [
        Patch(facecolor=s["color"], hatch=s["hatch"], edgecolor="black", lw=0.5, label=m)
        for m, s in styles.items()
        if m not in references
    ]
    refs = [(m, s) for m, s in styles.items() if m in references]
    if refs:
        handles.append(Patch(visible=False, label="references (no training):"))
        handles += [
            Patch(facecolor=s["color"], hatch=s["hatch"], edgecolor="black", lw=0.5, label=m)
            for m, s in refs
        ]
    if runs:
        handles.append(Line2D([], [], ls="", label="one run (seed)", **RUN_MARKER))
    if targets:
        handles.append(Line2D([], [], ls=":", lw=1, color="0.25", label="target bound"))
    fig.legend(
        handles=handles,
        loc="outside right center",
        fontsize=7,
        title="method",
        title_fontsize=7,
        frameon=False,
    )


RUN_MARKER = {"marker": "o", "ms": 3, "mfc": "white", "mec": "black", "mew": 0.6}


def _run_points(ax, x: float, values, width: float) -> None:
    """Each run's value as a small open circle over its bar, spread across the bar."""
    values = np.asarray([v for v in values if not pd.isna(v)], dtype=float)
    if not len(values):
        return
    spread = np.linspace(-0.25, 0.25, len(values)) * width if len(values) > 1 else [0.0]
    ax.plot(np.asarray(spread) + x, values, ls="", zorder=3, **RUN_MARKER)


def _grouped_bars(
    ax,
    table: pd.DataFrame,
    x_key: str,
    x_values: list,
    series: list[str],
    styles: dict[str, dict],
    runs: pd.DataFrame | None = None,
    slot: int | None = None,
    slots: int | None = None,
):
    """Bars of `mean` with 95 % CI error bars: one group per x value, one bar per entry of
    `series` (the `model` column) in its style, NaN left empty; `runs` (columns model,
    `x_key`, value): every run's value as a point over its bar. `slot` of `slots` places a
    single series at its own offset (default: the series' positions in `series`)."""
    slots = slots or len(series)
    width = 0.8 / max(slots, 1)
    for m, name in enumerate(series):
        rows = table[table["model"] == name].set_index(x_key).reindex(x_values)
        position = m if slot is None else slot
        x = np.arange(len(x_values)) + (position - (slots - 1) / 2) * width
        err = np.vstack([rows["mean"] - rows["ci95_low"], rows["ci95_high"] - rows["mean"]])
        style = styles[name]
        ax.bar(
            x,
            rows["mean"],
            width,
            color=style["color"],
            hatch=style["hatch"],
            edgecolor="black",
            lw=0.5,
            label=name,
            yerr=np.clip(np.nan_to_num(err), 0, None),
            error_kw={"lw": 0.8, "capsize": 2, "ecolor": "0.3"},
        )
        if runs is not None:
            mine = runs[runs["model"] == name]
            for xi, value in zip(x, x_values, strict=True):
                _run_points(ax, xi, mine.loc[mine[x_key] == value, "value"], width)
    ax.set_xticks(np.arange(len(x_values)))


def _y_range(ax, values) -> None:
    """0 to 1 (with room for the points), further when a value passes 1 (a ratio)."""
    values = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    top = max(1.0, float(values.max()) if len(values) else 1.0)
    ax.set_ylim(0, 1.05 * top)


def _grid(rows: int, columns: int, width: float = 3.4, height: float = 2.6):
    return plt.subplots(
        rows,
        columns,
        figsize=(width * columns + 1.6, height * rows + 0.6),
        squeeze=False,
        layout="constrained",
        sharey="row",
    )


def run_values(rates=None, separation=None, cell_rates=None) -> pd.DataFrame:
    """Every run's value of every metric, long: scenario, model, seed, stratum, metric,
    value (and cell, disk_coverage for per-cell tables), from the per-run tables as
    `fgbg.summary.read_runs` concatenates them. Metrics are whatever numeric columns (or
    `metric` rows) the tables hold."""
    keys = ["scenario", "model", "seed"]
    counts = {"n", "positives", "negatives", "pixels"}
    frames = []
    for table, extra in ((rates, ["stratum"]), (cell_rates, ["cell", "stratum", "disk_coverage"])):
        if table is None:
            continue
        values = [
            c for c in table.select_dtypes("number").columns
            if c not in {*keys, *extra, *counts} and c.split("_")[0] not in ("tp", "fp")
        ]  # fmt: skip
        frames.append(table.melt(id_vars=keys + extra, value_vars=values, var_name="metric"))
    if separation is not None:
        frames.append(
            separation.rename(columns={"region": "stratum"})[[*keys, "stratum", "metric", "value"]]
        )
    columns = [*keys, "stratum", "metric", "value"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _select(table: pd.DataFrame | None, **where) -> pd.DataFrame | None:
    if table is None:
        return None
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        mask &= (table[column] == value).to_numpy()
    return table[mask]


def summary_figure(
    summary: pd.DataFrame,
    metrics=("tpr", "fpr", "auroc"),
    strata=STRATA,
    runs: pd.DataFrame | None = None,
    references=(),
):
    """Bars: mean over seeds per stratum (x), method (colour), scenario (column) and metric
    (row); error bars: 95 % t-interval across seeds; points: each run (`runs`, see
    :func:`run_values`)."""
    scenarios = list(dict.fromkeys(summary["scenario"]))
    models = list(dict.fromkeys(summary["model"]))
    styles = method_styles(models, references)
    fig, axes = _grid(len(metrics), len(scenarios), width=0.2 * len(models) * len(strata) + 0.8)
    for i, metric in enumerate(metrics):
        for j, scenario in enumerate(scenarios):
            ax = axes[i, j]
            rows = _select(summary, scenario=scenario, metric=metric)
            here = _select(runs, scenario=scenario, metric=metric)
            _grouped_bars(ax, rows, "stratum", list(strata), models, styles, here)
            _y_range(ax, rows["ci95_high"] if here is None else here["value"])
            ax.set_xticklabels([s.replace("_", "\n", 1) for s in strata], fontsize=7)
            if i == 0:
                ax.set_title(f"scenario {scenario}", fontsize=9)
            if j == 0:
                ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    _method_legend(fig, styles, references, runs=runs is not None)
    _suptitle(
        fig,
        "Per-cell detection on the test split, by stratum: bars the mean over seeds with "
        "95 % CI" + (", points the runs" if runs is not None else ""),
    )
    return fig


SEPARATION_PANELS = (
    ("inside_bg_on", "auroc", "AUROC, cells under an active disk"),
    ("inside_bg_on", "fpr", "FPR at the threshold, cells under an active disk"),
    ("active_disks", "leakage", "leakage: foreground on active-disk pixels without a cell"),
)
# Further pooled separation metrics get a panel of their own when the summary has them.
SEPARATION_REGIONS = ("active_disks", "inside_active_disks")
SEPARATION_LABELS = {
    "leakage_ratio": "leakage ratio: disk pixels without a cell over cell pixels in the disk",
    "pixel_ap": "pixel AP of the active cells inside active disks",
}


# The pass counts (fgbg.targets) as summary.csv holds them: the last panel when present.
PASSING = ("targets", "runs_passing", "runs passing every target (k of n seeds)")


def separation_panels(summary: pd.DataFrame, panels=SEPARATION_PANELS) -> list[tuple]:
    """The panels the summary has rows for: `panels` first, then every other metric of the
    pooled regions (SEPARATION_REGIONS), e.g. leakage_ratio, pixel_ap, then the share of runs
    passing every target (PASSING)."""
    present = set(zip(summary["stratum"], summary["metric"], strict=True))
    chosen = [p for p in panels if (p[0], p[1]) in present]
    known = {(p[0], p[1]) for p in chosen}
    for stratum, metric in dict.fromkeys(zip(summary["stratum"], summary["metric"], strict=True)):
        if stratum in SEPARATION_REGIONS and (stratum, metric) not in known:
            chosen.append((stratum, metric, SEPARATION_LABELS.get(metric, f"{metric} ({stratum})")))
    if PASSING[:2] in present:
        chosen.append(PASSING)
    return chosen


def _target_line(ax, stratum: str, metric: str, rows: pd.DataFrame, targets=TARGETS) -> bool:
    """The target's bound (fgbg.targets) on this panel's measure as a dotted line; a
    relative bound at the ceiling's mean over the runs in `rows` (this scenario's), none
    when the ceiling is not among them."""
    for target in targets:
        if (target.stratum, target.metric) == (stratum, metric):
            ceiling = rows.loc[rows["model"] == CEILING, "mean"]
            if target.relative and ceiling.empty:
                return False
            bound = target.bound_for(ceiling.mean() if target.relative else float("nan"))
            ax.axhline(bound, ls=":", lw=1, color="0.25", zorder=4)
            return True
    return False


def _pass_counts(ax, rows: pd.DataFrame, models: list[str]) -> None:
    """k/n above each bar of the runs-passing panel (mean = k / n, n_seeds = n)."""
    rows = rows.set_index("model")
    for x, model in enumerate(models):
        if model in rows.index and not pd.isna(rows.loc[model, "mean"]):
            n = int(rows.loc[model, "n_seeds"])
            k = round(rows.loc[model, "mean"] * n)
            ax.text(x, 1.02, f"{k}/{n}", ha="center", va="bottom", fontsize=6)


def separation_figure(
    summary: pd.DataFrame, panels=SEPARATION_PANELS, runs: pd.DataFrame | None = None, references=()
):
    """Every method (x) side by side per scenario (column) on the separation questions
    (rows): are cells under an active disk told apart, are they called on regardless, how
    much of the disk is in the foreground output (and any further pooled separation metric
    the summary holds). Bars: means over seeds, 95 % CI; points: each run (`runs`)."""
    scenarios = list(dict.fromkeys(summary["scenario"]))
    models = list(dict.fromkeys(summary["model"]))
    styles = method_styles(models, references)
    panels = separation_panels(summary, panels)
    fig, axes = _grid(len(panels), len(scenarios), width=0.5 * len(models) + 1.0)
    targets = False
    for i, (stratum, metric, label) in enumerate(panels):
        for j, scenario in enumerate(scenarios):
            ax = axes[i, j]
            where = {"scenario": scenario, "stratum": stratum, "metric": metric}
            rows = _select(summary, **where).assign(x=lambda t: t["model"])
            here = _select(runs, **where)
            here = None if here is None else here.assign(x=here["model"])
            for model in models:  # one bar per method at its own x
                _grouped_bars(ax, rows, "x", models, [model], styles, here, slot=0, slots=1)
            _y_range(ax, rows["ci95_high"] if here is None or not len(here) else here["value"])
            targets |= _target_line(ax, stratum, metric, rows)
            if (stratum, metric) == PASSING[:2]:
                _pass_counts(ax, rows, models)
                ax.set_ylim(0, 1.15)
            ax.set_xticklabels(models, fontsize=7, rotation=45, ha="right")
            if i == 0:
                ax.set_title(f"scenario {scenario}", fontsize=9)
            if j == 0:
                ax.set_ylabel("\n".join(textwrap.wrap(label, 28)), fontsize=8)
    _method_legend(fig, styles, references, runs=runs is not None, targets=targets)
    _suptitle(
        fig,
        "Separation on the test split, every method: bars the mean over seeds with 95 % CI"
        + (", points the runs" if runs is not None else ""),
    )
    return fig


def cells_figure(
    cells: pd.DataFrame,
    stratum: str = "inside_bg_on",
    metrics=("fpr", "auroc"),
    runs: pd.DataFrame | None = None,
    references=(),
):
    """Per-cell rates in one stratum (summary_cells.csv): cells (x, labelled with their
    disk coverage, fully covered first) by method (colour), per scenario (column); points:
    each run (`runs`, from the per-run cell_rates.csv)."""
    scenarios = list(dict.fromkeys(cells["scenario"]))  # a scenario without any: empty panel
    models = list(dict.fromkeys(cells["model"]))
    styles = method_styles(models, references)
    cells = cells[cells["stratum"] == stratum]
    runs = None if runs is None else runs[runs["stratum"] == stratum]
    widest = max([cells[cells["scenario"] == s]["cell"].nunique() for s in scenarios] + [1])
    fig, axes = _grid(len(metrics), len(scenarios), width=0.5 * widest * len(models) / 3 + 1.5)
    for j, scenario in enumerate(scenarios):
        here = cells[cells["scenario"] == scenario]
        coverage = here.groupby("cell")["disk_coverage"].first().sort_values(ascending=False)
        labels = [f"{k}\n{'full' if c >= 1 else f'{100 * c:.0f} %'}" for k, c in coverage.items()]
        for i, metric in enumerate(metrics):
            ax = axes[i, j]
            rows = here[here["metric"] == metric]
            points = _select(runs, scenario=scenario, metric=metric)
            _grouped_bars(ax, rows, "cell", list(coverage.index), models, styles, points)
            _y_range(ax, rows["ci95_high"] if points is None else points["value"])
            ax.set_xticklabels(labels, fontsize=7)
            if i == 0:
                ax.set_title(f"scenario {scenario}", fontsize=9)
            if j == 0:
                ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            if i == len(metrics) - 1:
                ax.set_xlabel("cell (share of its pixels inside a disk)", fontsize=8)
    _method_legend(fig, styles, references, runs=runs is not None)
    _suptitle(
        fig,
        f"Per-cell rates in {stratum} on the test split, fully and partially covered cells "
        "apart: bars the mean over seeds with 95 % CI"
        + (", points the runs" if runs is not None else ""),
    )
    return fig


# Per-cell maps: blue is good and red bad in every panel (TPR high, FPR low), so the two
# panels of a row read the same way; cells without a value and pixels outside cells grey.
GOOD_HIGH = plt.get_cmap("RdYlBu").with_extremes(bad="0.85")
GOOD_LOW = GOOD_HIGH.reversed()
CELL_MAP_METRICS = {
    "tpr": ("TPR", GOOD_HIGH, "high (blue) is good"),
    "fpr": ("FPR", GOOD_LOW, "low (blue) is good"),
}


def cell_map(
    cell_mask: np.ndarray,
    disk_mask: np.ndarray,
    per_cell: dict[str, pd.DataFrame],
    disk_labels: list[str] | None = None,
    title: str = "",
):
    """The layout with each cell painted (and labelled) with its rate, disks outlined; a
    colour bar per panel, blue good and red bad in both (TPR high, FPR low).

    per_cell: {row name: table with columns cell, tpr, fpr} (means over seeds); one row of
    panels (TPR, FPR) per entry.
    """
    height, width = cell_mask.shape[1:]
    fig, axes = plt.subplots(
        len(per_cell),
        2,
        figsize=(8.2, 3.9 * len(per_cell) + 0.9),
        squeeze=False,
        layout="constrained",
    )
    for i, (name, table) in enumerate(per_cell.items()):
        table = table.set_index("cell")
        for j, (metric, (label, cmap, reading)) in enumerate(CELL_MAP_METRICS.items()):
            ax = axes[i, j]
            canvas = np.full((height, width), np.nan)
            for k, mask in enumerate(cell_mask):
                canvas[mask.astype(bool)] = table.loc[k, metric] if k in table.index else np.nan
            image = ax.imshow(canvas, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            bar = fig.colorbar(image, ax=ax, shrink=0.8, pad=0.02)
            bar.set_label(f"{label} ({reading})", fontsize=7)
            bar.ax.tick_params(labelsize=7)
            for d, mask in enumerate(disk_mask):
                ax.contour(mask.astype(float), levels=[0.5], colors="black", linewidths=1,
                           linestyles="dashed")  # fmt: skip
                if disk_labels:
                    ys, xs = np.nonzero(mask)
                    ax.text(xs.mean(), ys.mean(), disk_labels[d], fontsize=7, ha="center",
                            va="center", bbox={"fc": "white", "ec": "none", "alpha": 0.7,
                                               "pad": 0.5})  # fmt: skip
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
            ax.set_title(f"{label} per cell ({name}), {reading}", fontsize=9)
    _suptitle(fig, title or "Per-cell rates; disks outlined (dashed)")
    return fig
