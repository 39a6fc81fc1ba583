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
