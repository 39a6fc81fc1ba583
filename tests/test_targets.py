"""Pass counts (issue 13: measurements only learning can pass): a run passes when it meets
every target; k of n runs with an exact binomial interval; a run without a value is not
judged and never passes."""

import math

import pandas as pd
import pytest
from scipy import stats

from fgbg.summary import METRICS, summarise, wide
from fgbg.targets import ALL, NOT_JUDGED, TARGETS, pass_counts, run_verdicts

GOOD = {
    ("inside_bg_on", "auroc"): 0.999,
    ("inside_bg_on", "tpr"): 0.97,
    ("inside_bg_on", "fpr"): 0.01,
    ("active_disks", "leakage"): 0.02,
    ("active_disks", "leakage_ratio"): 0.02,
    ("outside", "auroc"): 1.0,
    ("inside_bg_off", "auroc"): 0.995,
}


def _long(n=5, changes=None, model="m", scenario="x90"):
    """Per-run values of n seeds meeting every target, with `changes` {seed: {key: value}}."""
    rows = []
    for seed in range(n):
        values = {**GOOD, **(changes or {}).get(seed, {})}
        for (stratum, metric), value in values.items():
            rows.append((scenario, model, seed, stratum, metric, value))
    return pd.DataFrame(rows, columns=["scenario", "model", "seed", "stratum", "metric", "value"])


def _all(counts):
    return counts[counts["target"] == ALL].iloc[0]


def test_every_target_met_in_every_seed_passes_n_of_n():
    row = _all(pass_counts(_long()))
    assert (row["k"], row["n"], row["not_judged"]) == (5, 5, 0)
    ci = stats.binomtest(5, 5).proportion_ci(method="exact")
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((ci.low, ci.high))
    assert row["ci95_high"] == 1 and row["ci95_low"] == pytest.approx(0.025 ** (1 / 5))


def test_one_failing_seed_gives_n_minus_one():
    counts = pass_counts(_long(changes={3: {("active_disks", "leakage_ratio"): 0.031}}))
    row = _all(counts)
    assert (row["k"], row["n"]) == (4, 5)
    per_target = counts.set_index("target")["k"]
    assert per_target["leakage_ratio `active_disks` <= 0.03"] == 4
    assert per_target["leakage `active_disks` <= 0.03"] == 5
    ci = stats.binomtest(4, 5).proportion_ci(method="exact")
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((ci.low, ci.high))


def test_a_bound_itself_passes():
    row = _all(pass_counts(_long(changes={0: {("inside_bg_on", "fpr"): 0.02}})))
    assert row["k"] == 5


def test_a_nan_or_missing_metric_is_not_judged_never_passing():
    long = _long(changes={1: {("inside_bg_on", "auroc"): math.nan}})
    long = long[~((long["seed"] == 2) & (long["metric"] == "leakage"))]  # no row at all
    verdicts = run_verdicts(long)
    overall = verdicts[verdicts["target"] == ALL].set_index("seed")["verdict"]
    assert overall[1] == overall[2] == NOT_JUDGED
    row = _all(pass_counts(long))
    assert (row["k"], row["n"], row["not_judged"]) == (3, 5, 2)
    # a no-disk control: nothing inside an active disk to judge, no run passes
    control = _long()
    control = control[control["stratum"] == "outside"]
    row = _all(pass_counts(control))
    assert (row["k"], row["not_judged"]) == (0, 5)


def test_a_failing_target_outranks_an_unjudged_one():
    changes = {0: {("inside_bg_on", "tpr"): math.nan, ("outside", "auroc"): 0.5}}
    verdicts = run_verdicts(_long(changes=changes))
    assert verdicts.query("seed == 0 and target == @ALL")["verdict"].item() == "fail"


def _tables(long):
    """The long values back into rates.csv / separation.csv form, with the run keys."""
    keys = ["scenario", "model", "seed"]
    rate_rows = long[long["metric"].isin(["tpr", "fpr", "auroc"])]
    rates = rate_rows.pivot_table(index=[*keys, "stratum"], columns="metric", values="value")
    rates = rates.reset_index()
    for metric in METRICS:
        if metric not in rates:
            rates[metric] = 0.5
    separation = long[long["stratum"] == "active_disks"].rename(columns={"stratum": "region"})
    return rates, separation


def test_pass_counts_are_rows_of_the_summary_and_the_wide_table():
    long = pd.concat([_long(changes={4: {("inside_bg_on", "tpr"): 0.9}}), _long(model="raw")])
    rates, separation = _tables(long)
    table = summarise(rates, separation, ["x90"], ["m", "raw"])
    passing = table.query("stratum == 'targets' and metric == 'runs_passing'")
    assert passing["model"].tolist() == ["m", "raw"]
    assert passing["n_seeds"].tolist() == [5, 5]
    assert (passing["mean"] * passing["n_seeds"]).tolist() == [4, 5]
    tpr = table.query("model == 'm' and metric == 'pass_tpr_inside_bg_on'")
    assert tpr["stratum"].item() == "targets"
    assert tpr["mean"].item() == pytest.approx(0.8) and math.isnan(tpr["std"].item())
    assert table["model"].tolist() == sorted(table["model"].tolist())  # each model's block
    cells = wide(table, ["x90"]).set_index(["model", "stratum", "metric"])["x90"]
    assert cells["m", "targets", "runs_passing"].startswith("4 of 5 [0.28, 0.99]")
    assert cells["raw", "targets", "runs_not_judged"].startswith("0 of 5")


def test_targets_are_the_issue_bounds():
    bounds = {(t.stratum, t.metric): (t.side, t.bound) for t in TARGETS}
    assert bounds == {
        ("inside_bg_on", "auroc"): (">=", 0.995),
        ("inside_bg_on", "tpr"): (">=", 0.95),
        ("inside_bg_on", "fpr"): ("<=", 0.02),
        ("active_disks", "leakage"): ("<=", 0.03),
        ("active_disks", "leakage_ratio"): ("<=", 0.03),
        ("outside", "auroc"): (">=", 0.99),
        ("inside_bg_off", "auroc"): (">=", 0.99),
    }
