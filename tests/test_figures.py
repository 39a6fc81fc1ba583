"""Every figure renders from tiny arrays and tables (files exist and are non-empty PNGs)."""

import numpy as np
import pandas as pd
import pytest
from eval_helpers import clean_split

from fgbg import figures
from fgbg.metrics.rates import STRATA


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    return data


@pytest.mark.parametrize("dual", [True, False])
def test_reconstruction_grid(tmp_path, dual):
    rng = np.random.default_rng(0)
    x = (rng.random((3, 12, 12)) > 0.5).astype(float)
    small = rng.random((3, 2, 2))
    fig = figures.reconstruction_grid(x, x * 0.8, small if dual else None, small if dual else None)
    assert len(fig.axes) == 3 * (4 if dual else 2)
    figures.save(fig, tmp_path / "grid.png")
    _png(tmp_path / "grid.png")


def test_latent_traversal(tmp_path):
    labels = [f"z1[{d}] = {s}5" for d in range(3) for s in "+-"]
    fig = figures.latent_traversal(labels, np.random.default_rng(0).random((6, 10, 10)))
    assert len(fig.axes) == 6 and fig.axes[1].get_xlabel() == "z1[0] = -5"
    figures.save(fig, tmp_path / "traversal.png")
    _png(tmp_path / "traversal.png")


def test_latent_traversal_of_two_layers_draws_both():
    """A layered model's background latent moves b, not f: both columns are drawn."""
    labels = [f"z_bg[{d}] = {s}5" for d in range(2) for s in "+-"]
    rng = np.random.default_rng(0)
    layers = {
        "foreground layer f": rng.random((4, 10, 10)),
        "background layer b": rng.random((4, 10, 10)),
    }
    fig = figures.latent_traversal(labels, layers)
    assert len(fig.axes) == 2 * 4
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [
        "foreground layer f",
        "foreground layer f",
        "background layer b",
        "background layer b",
    ]


def test_latent_traversal_without_dimensions_says_so():
    fig = figures.latent_traversal([], {})
    assert "no latent block" in " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_traverse_outputs_decodes_every_layer():
    import torch

    from fgbg.illustrate import LAYER_NAMES, traverse_outputs

    class TwoLayers(torch.nn.Module):
        def decode(self, latents):
            z = latents["z_bg"].sum(1).view(-1, 1, 1, 1)
            return {"foreground": torch.zeros(len(z), 1, 4, 4), "background": z.expand(-1, 1, 4, 4)}

    labels, images = traverse_outputs(
        TwoLayers(), {"z_fg": 50, "z_bg": 2}, amplitude=5, blocks=["z_bg"], names=LAYER_NAMES
    )
    assert labels == ["z_bg[0] = +5", "z_bg[0] = -5", "z_bg[1] = +5", "z_bg[1] = -5"]
    assert list(images) == ["foreground layer f", "background layer b"]
    assert np.allclose(images["foreground layer f"], 0.5)
    assert (
        images["background layer b"][0, 0, 0] > 0.99
        and images["background layer b"][1, 0, 0] < 0.01
    )


@pytest.mark.parametrize("dual", [True, False])
def test_training_curves(tmp_path, dual):
    history = pd.DataFrame({"epoch": [1, 2, 3], "loss": [3.0, 2.0, 1.5], "ll_fg": [-2, -1.5, -1]})
    if dual:
        history = history.assign(kl_z1=[1, 0.5, 0.4], ll_bg=[-0.9, -0.7, -0.6], kl_z2=[0.1] * 3)
        history = history.assign(
            val_loss=[3.1, 2.2, 1.7], val_ll_fg=[-2, -1.6, -1.2], val_kl_z1=[1, 0.6, 0.5]
        )
    else:
        history = history.assign(kl_z=[1, 0.5, 0.4])
    fig = figures.training_curves(history)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "loss (minimised)" and titles[-1] == ("KL term z2" if dual else "KL term z")
    assert ("ELBO2 (background)" in titles) == dual
    figures.save(fig, tmp_path / "curves.png")
    _png(tmp_path / "curves.png")


def test_training_curves_overlay_seeds_of_different_lengths(tmp_path):
    """One line per seed and split; a seed stopped early has fewer epochs."""
    runs = []
    for seed, epochs in ((0, 4), (1, 2)):
        e = np.arange(1, epochs + 1)
        runs.append(pd.DataFrame({"seed": seed, "epoch": e, "loss": 3.0 / e, "ll_fg": -1.0 / e,
                                  "kl_z": 0.1 * e, "val_loss": 3.2 / e}))  # fmt: skip
    fig = figures.training_curves(pd.concat(runs, ignore_index=True))
    loss = fig.axes[0]
    assert [len(line.get_xdata()) for line in loss.get_lines()] == [4, 4, 2, 2]
    assert [line.get_linestyle() for line in loss.get_lines()] == ["-", "--", "-", "--"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["seed 0", "seed 1", "training set", "validation split"]
    figures.save(fig, tmp_path / "curves.png")
    _png(tmp_path / "curves.png")


def test_summary_figure(tmp_path):
    rows = [
        {
            "scenario": s,
            "model": m,
            "stratum": st,
            "metric": metric,
            "mean": 0.5,
            "std": 0.1,
            "ci95_low": 0.4,
            "ci95_high": 0.6,
            "n_seeds": 2,
        }
        for s in ("x90", "x50")
        for m in ("dual", "vae")
        for st in (*STRATA, "inside")
        for metric in ("tpr", "fpr", "auroc")
    ]
    rows[0]["ci95_low"] = rows[0]["ci95_high"] = float("nan")  # one seed: no error bar
    fig = figures.summary_figure(pd.DataFrame(rows))
    assert len(fig.axes) == 3 * 2
    figures.save(fig, tmp_path / "summary.png")
    _png(tmp_path / "summary.png")


def test_cell_map(tmp_path):
    data = clean_split("x90_20", n=10)
    per_cell = pd.DataFrame({"cell": range(10), "tpr": np.linspace(0, 1, 10), "fpr": 0.1})
    per_cell.loc[3, "fpr"] = np.nan  # a cell without negatives
    fig = figures.cell_map(
        data["cell_mask"].values,
        data["disk_mask"].values,
        {"score": per_cell, "z2 switched off": per_cell},
        disk_labels=["d0", "d1"],
    )
    assert len([ax for ax in fig.axes if ax.get_title()]) == 4
    figures.save(fig, tmp_path / "cells.png")
    _png(tmp_path / "cells.png")


def _summary_rows(rows):
    stats = {"std": 0.01, "ci95_low": 0.0, "ci95_high": 1.0, "n_seeds": 3}
    return pd.DataFrame([{**r, **stats} for r in rows])


def test_separation_figure(tmp_path):
    rows = [
        {"scenario": s, "model": m, "stratum": st, "metric": me, "mean": 0.5}
        for s in ("x90", "x50")
        for m in ("dual", "raw", "truth")
        for st, me, _ in figures.SEPARATION_PANELS
    ]
    fig = figures.separation_figure(_summary_rows(rows))
    assert len(fig.axes) == 3 * 2
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["dual", "raw", "truth"]
    figures.save(fig, tmp_path / "separation.png")
    _png(tmp_path / "separation.png")


def test_cells_figure_orders_cells_by_coverage_and_copes_with_no_covered_cell(tmp_path):
    rows = [
        {"scenario": "x90", "model": m, "cell": c, "stratum": "inside_bg_on",
         "disk_coverage": cov, "metric": me, "mean": 0.4}
        for m in ("dual", "raw")
        for c, cov in ((6, 17 / 36), (5, 1.0))
        for me in ("fpr", "auroc")
    ] + [
        {"scenario": "control", "model": "dual", "cell": 0, "stratum": "outside",
         "disk_coverage": 0.0, "metric": "fpr", "mean": 0.0}
    ]  # fmt: skip
    fig = figures.cells_figure(_summary_rows(rows))
    assert len(fig.axes) == 2 * 2  # two metrics x two scenarios (control: empty panels)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["5\nfull", "6\n47 %"]
    figures.save(fig, tmp_path / "cells.png")
    _png(tmp_path / "cells.png")


def test_decomposition(tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.random((3, 12, 12))
    fig = figures.decomposition(stack, stack, stack, stack > 0.5, stack > 0.2)
    assert len(fig.axes) == 3 * 5
    figures.save(fig, tmp_path / "decomposition.png")
    _png(tmp_path / "decomposition.png")


def test_method_styles_one_colour_per_method_references_apart():
    methods = ["dual", "vae", "dual_kl1", "layered", "raw", "neuropil", "truth", "opening"]
    references = ["raw", "neuropil", "truth", "opening"]
    styles = figures.method_styles(methods, references)
    assert list(styles) == methods
    assert len({s["color"] for s in styles.values()}) == len(methods)
    assert [s["hatch"] is not None for s in styles.values()] == [m in references for m in methods]
    assert not {styles[m]["color"] for m in references} & set(figures.MODEL_COLOURS)
    # the same method list gives the same colours in every figure
    assert figures.method_styles(methods, references) == styles


def _runs(rows, values=(0.1, 0.9)):
    """Per-run values (two seeds, far apart) for each summary row."""
    return pd.DataFrame(
        [{**{k: r[k] for k in ("scenario", "model", "stratum", "metric")}, "seed": s, "value": v}
         for r in rows for s, v in enumerate(values)]
    )  # fmt: skip


def _bar_colours(ax):
    return {tuple(p.get_facecolor()) for p in ax.patches}


def test_separation_figure_shows_every_run_and_further_metrics(tmp_path):
    rows = [
        {"scenario": "x90", "model": m, "stratum": st, "metric": me, "mean": 0.5}
        for m in ("dual", "vae", "raw")
        for st, me in [(st, me) for st, me, _ in figures.SEPARATION_PANELS]
        + [("active_disks", "leakage_ratio"), ("disk0", "leakage")]
    ]
    runs = _runs(rows, values=(0.1, 0.9, 1.4))
    fig = figures.separation_figure(_summary_rows(rows), runs=runs, references=["raw"])
    # the three panels, then leakage_ratio (a pooled region); disk0 is not pooled
    assert len(fig.axes) == 4
    assert fig.axes[3].get_ylabel().startswith("leakage ratio")
    assert fig.axes[3].get_ylim()[1] > 1.4  # a ratio above 1 stays in view
    points = [line for line in fig.axes[0].get_lines() if line.get_marker() == "o"]
    assert sum(len(line.get_xdata()) for line in points) == 3 * 3  # 3 methods x 3 runs
    assert len(_bar_colours(fig.axes[0])) == 3  # one colour per method
    assert len(fig.legends) == 1  # outside the axes, not in them
    assert all(ax.get_legend() is None for ax in fig.axes)
    figures.save(fig, tmp_path / "separation.png")
    _png(tmp_path / "separation.png")


def test_summary_and_cells_figures_with_runs(tmp_path):
    rows = [
        {"scenario": "x90", "model": m, "stratum": st, "metric": me, "mean": 0.5}
        for m in ("dual", "vae", "raw")
        for st in STRATA
        for me in ("tpr", "fpr", "auroc")
    ]
    fig = figures.summary_figure(_summary_rows(rows), runs=_runs(rows), references=["raw"])
    assert len(_bar_colours(fig.axes[0])) == 3 and len(fig.legends) == 1
    figures.save(fig, tmp_path / "summary.png")
    _png(tmp_path / "summary.png")
    cells = [
        {"scenario": "x90", "model": m, "cell": c, "stratum": "inside_bg_on",
         "disk_coverage": 1.0, "metric": me, "mean": 0.4}
        for m in ("dual", "raw") for c in (5, 6) for me in ("fpr", "auroc")
    ]  # fmt: skip
    runs = _runs(cells).assign(cell=[r["cell"] for r in cells for _ in range(2)])
    fig = figures.cells_figure(_summary_rows(cells), runs=runs, references=["raw"])
    points = [line for line in fig.axes[0].get_lines() if line.get_marker() == "o"]
    assert sum(len(line.get_xdata()) for line in points) == 2 * 2 * 2
    figures.save(fig, tmp_path / "cells.png")
    _png(tmp_path / "cells.png")


def test_run_values_reads_whatever_metrics_the_tables_hold():
    rates = pd.DataFrame({"scenario": "x90", "model": "dual", "seed": [0, 1],
                          "stratum": "outside", "n": 10, "tp": 3, "tpr": [0.5, 0.6],
                          "auroc": [0.9, 1.0]})  # fmt: skip
    separation = pd.DataFrame({"scenario": "x90", "model": "dual", "seed": [0, 0],
                               "region": "active_disks", "metric": ["leakage", "new_metric"],
                               "value": [0.1, 0.2], "pixels": 5})  # fmt: skip
    long = figures.run_values(rates=rates, separation=separation)
    assert set(long["metric"]) == {"tpr", "auroc", "leakage", "new_metric"}
    assert list(long.columns[:6]) == ["scenario", "model", "seed", "stratum", "metric", "value"]


def test_separation_figure_draws_targets_and_pass_counts():
    rows = [
        {"scenario": "x90", "model": m, "stratum": st, "metric": me, "mean": 0.5}
        for m in ("dual", "raw")
        for st, me, _ in figures.SEPARATION_PANELS
    ] + [
        {"scenario": "x90", "model": m, "stratum": "targets", "metric": "runs_passing", "mean": v}
        for m, v in (("dual", 0.8), ("raw", 0.0))
    ]
    table = _summary_rows(rows).assign(n_seeds=5)
    fig = figures.separation_figure(table, references=["raw"])
    assert len(fig.axes) == 4 and fig.axes[3].get_ylabel().startswith("runs passing")
    assert [t.get_text() for t in fig.axes[3].texts] == ["4/5", "0/5"]

    def dotted(ax):
        return [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"]

    assert dotted(fig.axes[2]) == [0.03]  # the leakage target, absolute
    assert dotted(fig.axes[0]) == dotted(fig.axes[1]) == []  # relative: no ceiling, no line
    # with the ceiling's rows the relative bounds sit at its mean plus the offset
    ceiling = [{"scenario": "x90", "model": "bayes", "stratum": "inside_bg_on",
                "metric": metric, "mean": mean} for metric, mean in (("auroc", 0.99),
                                                                      ("fpr", 0.006))]  # fmt: skip
    table = _summary_rows(rows + ceiling).assign(n_seeds=5)
    fig = figures.separation_figure(table, references=["raw", "bayes"])
    assert dotted(fig.axes[0]) == [pytest.approx(0.985)]
    assert dotted(fig.axes[1]) == [pytest.approx(0.016)]


def test_one_hot_states_move_away_from_a_code():
    from fgbg.illustrate import one_hot_states

    base = {"z_fg": np.full(3, 0.5), "z_bg": np.array([1.0, -1.0])}
    labels, latents = one_hot_states({"z_fg": 3, "z_bg": 2}, 5, blocks=["z_bg"], base=base)
    assert labels == ["z_bg[0] +5", "z_bg[0] -5", "z_bg[1] +5", "z_bg[1] -5"]
    assert np.allclose(latents["z_fg"].numpy(), 0.5)  # held at the image's code
    assert np.allclose(latents["z_bg"][:, 0].numpy(), [6, -4, 1, 1])
