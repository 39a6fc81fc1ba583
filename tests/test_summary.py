"""Aggregation across seeds, on hand-built tables (the findings: test_findings.py)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fgbg.summary import format_cell, read_runs, summarise_latent, summarise_rates, t_interval
from fgbg.summary import wide as wide_table


def test_t_interval_by_hand():
    result = t_interval([0.8, 0.9, 1.0])
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert result["mean"] == pytest.approx(0.9) and result["std"] == pytest.approx(0.1)
    assert result["ci95_low"] == pytest.approx(0.9 - half)
    assert result["ci95_high"] == pytest.approx(0.9 + half)
    assert result["n_seeds"] == 3


def test_t_interval_edge_cases():
    one = t_interval([0.7, float("nan")])
    assert one["mean"] == 0.7 and one["n_seeds"] == 1 and math.isnan(one["ci95_low"])
    none = t_interval([])
    assert none["n_seeds"] == 0 and math.isnan(none["mean"])
    same = t_interval([0.5, 0.5])
    assert same["ci95_low"] == same["ci95_high"] == 0.5


def _rates(scenario, model, seed, stratum_values):
    rows = []
    for stratum, (tpr, fpr) in stratum_values.items():
        row = {"scenario": scenario, "model": model, "seed": seed, "stratum": stratum}
        for suffix in ("", "_z2_off"):
            row |= {
                f"tpr{suffix}": tpr,
                f"fpr{suffix}": fpr,
                f"auroc{suffix}": 0.9,
                f"balanced_accuracy{suffix}": (tpr + 1 - fpr) / 2,
            }
        rows.append(row)
    return rows


def test_summary_rows_order_and_values():
    rows = []
    for seed, tpr in [(0, 0.8), (1, 1.0)]:
        rows += _rates("b", "vae", seed, {"outside": (tpr, 0.1), "disk1_inside": (0.5, 0.5)})
        rows += _rates("a", "dual", seed, {"inside": (tpr, 0.0), "outside": (1.0, 0.0)})
    summary = summarise_rates(pd.DataFrame(rows), scenarios=["a", "b"], models=["dual", "vae"])
    assert list(summary.columns) == [
        "scenario",
        "model",
        "stratum",
        "metric",
        "mean",
        "std",
        "ci95_low",
        "ci95_high",
        "n_seeds",
    ]
    keys = summary[["scenario", "model", "stratum"]].drop_duplicates().values.tolist()
    assert keys == [
        ["a", "dual", "outside"],
        ["a", "dual", "inside"],
        ["b", "vae", "outside"],
        ["b", "vae", "disk1_inside"],
    ]
    assert summary["metric"].tolist()[:8] == [
        "tpr",
        "fpr",
        "auroc",
        "balanced_accuracy",
        "tpr_z2_off",
        "fpr_z2_off",
        "auroc_z2_off",
        "balanced_accuracy_z2_off",
    ]
    row = summary.query("scenario == 'b' and stratum == 'outside' and metric == 'tpr'").iloc[0]
    assert row["mean"] == pytest.approx(0.9) and row["n_seeds"] == 2
    assert row["std"] == pytest.approx(np.std([0.8, 1.0], ddof=1))

    wide = wide_table(summary, ["a", "b"])
    assert list(wide.columns) == ["model", "stratum", "metric", "a", "b"]
    cell = wide.query("model == 'vae' and stratum == 'outside' and metric == 'tpr'")
    assert cell["a"].item() == "" and cell["b"].item().startswith("0.900 ± ")
    assert wide["model"].tolist()[0] == "dual"


def test_format_cell():
    assert format_cell(0.9, 0.85, 0.95) == "0.900 ± 0.050"
    assert format_cell(0.9, float("nan"), float("nan")) == "0.900"
    assert format_cell(float("nan"), 0, 1) == ""


def test_read_runs_adds_the_run_keys(tmp_path):
    path = tmp_path / "latent.csv"
    pd.DataFrame(
        {
            "latent": ["z1", "z1"],
            "dim": ["0", "block"],
            "target": ["disk0"] * 2,
            "metric": ["auroc", "probe_auroc"],
            "value": [0.6, 0.7],
        }
    ).to_csv(path, index=False)
    table = read_runs([("x90", "dual", "3", path)])
    assert table.columns[:3].tolist() == ["scenario", "model", "seed"]
    assert table["seed"].tolist() == [3, 3] and table["dim"].tolist() == ["0", "block"]
    summary = summarise_latent(table, ["x90"], ["dual"])
    assert summary["dim"].tolist() == ["0", "block"] and summary["n_seeds"].tolist() == [1, 1]
