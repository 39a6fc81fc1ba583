"""Aggregation across seeds and the findings' verdict rules, on hand-built tables."""

import math

import numpy as np
import pandas as pd
import pytest
from fgbg.findings import Estimate, above, below, combine, difference, findings
from fgbg.summary import format_cell, read_runs, summarise_latent, summarise_rates, t_interval
from fgbg.summary import wide as wide_table
from scipy import stats


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


def est(mean, low, high, n=5, std=0.01):
    return Estimate("q", mean, std, n, low, high)


def test_absolute_verdict_rules():
    assert above(est(0.97, 0.96, 0.98), 0.95) == "supported"
    assert above(est(0.90, 0.88, 0.92), 0.95) == "not supported"
    assert above(est(0.95, 0.93, 0.97), 0.95) == "inconclusive"
    assert above(est(0.99, math.nan, math.nan, n=1), 0.95) == "inconclusive"
    assert below(est(0.01, 0.0, 0.02), 0.05) == "supported"
    assert below(est(0.10, 0.08, 0.12), 0.05) == "not supported"


def test_difference_uses_a_welch_interval():
    a = Estimate("a", 0.9, 0.02, 5, 0, 0)
    b = Estimate("b", 0.7, 0.04, 4, 0, 0)
    d = difference(a, b, "a - b")
    welch = stats.ttest_ind_from_stats(0.9, 0.02, 5, 0.7, 0.04, 4, equal_var=False)
    assert d.mean == pytest.approx(0.2)
    low, high = (
        welch.confidence_interval(0.95)
        if hasattr(welch, "confidence_interval")
        else (d.low, d.high)
    )
    assert (d.low, d.high) == pytest.approx((low, high))
    assert math.isnan(difference(a, Estimate("c", 0.5, math.nan, 1, 0, 0), "x").low)


def test_combine():
    assert combine(["supported", "supported"]) == "supported"
    assert combine(["supported", "inconclusive"]) == "inconclusive"
    assert combine(["inconclusive", "not supported"]) == "not supported"
    assert combine([]) == "inconclusive"


SCENARIOS = {
    "x90": {"disks": [{"probability": 0.9}]},
    "x50": {"disks": [{"probability": 0.5}]},
    "x90_20": {"disks": [{"probability": 0.9}, {"probability": 0.2}]},
}


def _tidy(values, keys, n, half, **fixed):
    """values {(scenario, *keys): mean} -> tidy summary rows of model dual with a tight CI."""
    rows = []
    for (scenario, *labels), mean in values.items():
        row = {
            "scenario": scenario,
            "model": "dual",
            **fixed,
            **dict(zip(keys, labels, strict=True)),
        }
        row.update(mean=mean, std=half, ci95_low=mean - half, ci95_high=mean + half, n_seeds=n)
        rows.append(row)
    return pd.DataFrame(rows)


def _summary_rows(values, n=5, half=0.01):
    """values {(scenario, stratum, metric): mean} -> rows of summary.csv."""
    return _tidy(values, ("stratum", "metric"), n, half)


def _latent_rows(values, n=5, half=0.01):
    """values {(scenario, latent, target, metric): mean} -> rows of summary_latent.csv."""
    return _tidy(values, ("latent", "target", "metric"), n, half, dim="block")


def thesis_like():
    """Tables in which every finding holds by a wide margin."""
    rates = {}
    for s in SCENARIOS:
        rates |= {(s, "outside", "tpr"): 0.99, (s, "outside", "fpr"): 0.01}
    rates |= {
        ("x90", "inside_bg_off", "tpr"): 0.5,
        ("x90", "inside_bg_on", "fpr"): 0.6,
        ("x90", "inside", "balanced_accuracy"): 0.6,
        ("x50", "inside", "balanced_accuracy"): 0.9,
        ("x50", "outside", "fpr"): 0.2,
        ("x90_20", "outside", "balanced_accuracy"): 0.98,
        ("x90_20", "disk1_inside", "balanced_accuracy"): 0.97,
        ("x90_20", "disk0_inside", "balanced_accuracy"): 0.6,
    }
    latent = {(s, "background", "g(x)", "mae"): 0.01 for s in SCENARIOS}
    latent |= {
        ("x90", "z1", "disk0", "probe_auroc"): 0.95,
        ("x50", "z1", "disk0", "probe_auroc"): 0.6,
        ("x90_20", "z1", "disk0", "probe_auroc"): 0.9,
        ("x90_20", "z1", "disk1", "probe_auroc"): 0.55,
    }
    return rates, latent


def test_findings_all_supported_on_thesis_like_tables():
    rates, latent = thesis_like()
    table = findings(_summary_rows(rates), _latent_rows(latent), "dual", SCENARIOS)
    assert table["finding"].tolist() == [1, 2, 3, 4, 5, 6]
    assert list(table.columns) == ["finding", "claim", "rule", "numbers", "verdict"]
    assert (table["verdict"] == "supported").all(), table[["finding", "numbers"]].to_string()
    assert "[0.98" in table.loc[1, "numbers"] or "0.990" in table.loc[1, "numbers"]


def test_findings_rejected_when_the_numbers_contradict():
    rates, latent = thesis_like()
    latent[("x50", "background", "g(x)", "mae")] = 0.2  # 1: large error in one scenario
    rates[("x90", "inside_bg_off", "tpr")] = 0.99  # 3: inside cells found when the disk is off
    rates[("x50", "outside", "fpr")] = 0.01  # 4: no extra false positives outside
    rates[("x90_20", "disk1_inside", "balanced_accuracy")] = 0.6  # 5: rare disk as poor
    table = findings(_summary_rows(rates), _latent_rows(latent), "dual", SCENARIOS)
    verdicts = dict(zip(table["finding"], table["verdict"], strict=True))
    assert verdicts == {
        1: "not supported",
        2: "supported",
        3: "not supported",
        4: "not supported",
        5: "not supported",
        6: "supported",
    }


def test_findings_inconclusive_with_wide_intervals_or_missing_scenarios():
    rates, latent = thesis_like()
    wide = findings(
        _summary_rows(rates, half=0.5), _latent_rows(latent, half=0.5), "dual", SCENARIOS
    )
    assert (wide["verdict"] == "inconclusive").all()
    only_x90 = {k: v for k, v in rates.items() if k[0] == "x90"}
    partial = findings(
        _summary_rows(only_x90), _latent_rows(latent), "dual", {"x90": SCENARIOS["x90"]}
    )
    verdicts = dict(zip(partial["finding"], partial["verdict"], strict=True))
    assert verdicts[3] == "supported"
    assert verdicts[4] == verdicts[5] == "inconclusive"
    assert "not run" in partial.loc[partial["finding"] == 4, "numbers"].item()
