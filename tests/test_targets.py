"""Pass counts: a run passes when it meets every target, the ranking and calling targets
relative to the ceiling (`bayes`) of the same run; k of n runs with an exact binomial
interval; a run without a value (or without a ceiling for a relative target) is not judged
and never passes."""

import itertools
import math

import pandas as pd
import pytest
from scipy import stats

from fgbg.summary import METRICS, summarise, wide
from fgbg.targets import (
    ALL,
    CEILING,
    NOT_JUDGED,
    PASS,
    TARGETS,
    excess_over_ceiling,
    pass_counts,
    run_verdicts,
)

# the ceiling's values in every run, and a method's that meet every target against them
CEILING_VALUES = {
    ("inside_bg_on", "auroc"): 0.9995,
    ("inside_bg_on", "tpr"): 0.9997,
    ("inside_bg_on", "fpr"): 0.008,
    ("active_disks", "leakage"): 0.0005,
    ("active_disks", "leakage_ratio"): 0.0005,
    ("disk0", "leakage"): 0.0005,
    ("outside", "auroc"): 1.0,
    ("inside_bg_off", "auroc"): 1.0,
}
GOOD = {
    ("inside_bg_on", "auroc"): 0.999,
    ("inside_bg_on", "tpr"): 0.98,
    ("inside_bg_on", "fpr"): 0.01,
    ("active_disks", "leakage"): 0.02,
    ("active_disks", "leakage_ratio"): 0.02,
    ("disk0", "leakage"): 0.02,
    ("outside", "auroc"): 1.0,
    ("inside_bg_off", "auroc"): 0.998,
}


def _long(n=5, changes=None, model="m", scenario="x90", ceiling=True):
    """Per-run values of n seeds meeting every target, with `changes` {seed: {key: value}},
    beside the ceiling's rows of the same runs."""
    rows = []
    for seed in range(n):
        values = {**GOOD, **(changes or {}).get(seed, {})}
        for (stratum, metric), value in values.items():
            rows.append((scenario, model, seed, stratum, metric, value))
        for (stratum, metric), value in CEILING_VALUES.items() if ceiling else ():
            rows.append((scenario, CEILING, seed, stratum, metric, value))
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
    per_target = counts[counts["model"] == "m"].set_index("target")["k"]
    assert per_target["leakage_ratio `active_disks` <= 0.03"] == 4
    assert per_target["leakage `active_disks` <= 0.03"] == 5
    ci = stats.binomtest(4, 5).proportion_ci(method="exact")
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((ci.low, ci.high))


def test_a_bound_itself_passes():
    row = _all(pass_counts(_long(changes={0: {("active_disks", "leakage"): 0.03}})))
    assert row["k"] == 5


def test_relative_targets_move_with_the_ceiling_of_the_same_run():
    """A method 0.01 below the ceiling's AUROC fails where 0.004 below passes; the same
    value passes against a lower ceiling; without a ceiling the run is not judged."""
    key = ("inside_bg_on", "auroc")
    verdicts = run_verdicts(_long(changes={0: {key: 0.9895}, 1: {key: 0.9955}}))
    auroc = verdicts.query("model == 'm' and target == 'auroc `inside_bg_on` >= bayes -0.005'")
    assert auroc["verdict"].tolist() == ["fail", "pass", "pass", "pass", "pass"]
    assert auroc["bound"].iloc[0] == pytest.approx(0.9945)
    # the ceiling itself meets every target; so does a method at it
    assert (verdicts.query("model == @CEILING and target == @ALL")["verdict"] == PASS).all()
    # on a geometry where the ceiling ranks worse (small cells), the same 0.9895 passes
    lower = _long(changes={0: {key: 0.9895}})
    lower.loc[(lower["model"] == CEILING) & (lower["metric"] == "auroc"), "value"] = 0.992
    assert _all(pass_counts(lower))["k"] == 5
    # FPR: within 0.01 above the ceiling's
    fpr = run_verdicts(_long(changes={0: {("inside_bg_on", "fpr"): 0.0185}}))
    assert fpr.query("model == 'm' and seed == 0 and target == @ALL")["verdict"].item() == "fail"
    row = _all(pass_counts(_long(ceiling=False)))
    assert (row["k"], row["not_judged"]) == (0, 5)


def test_every_disk_has_its_own_leakage_bound():
    """A rare disk that leaks fails the run even when the pooled leakage is low."""
    changes = {2: {("disk1", "leakage"): 0.06}, 3: {("disk1", "leakage"): 0.05}}
    verdicts = run_verdicts(_long(changes=changes))
    disk = verdicts.query("model == 'm' and target == 'leakage `each_disk` <= 0.05'")
    assert disk["value"].tolist() == [0.02, 0.02, 0.06, 0.05, 0.02]
    assert disk["verdict"].tolist() == ["pass", "pass", "fail", "pass", "pass"]
    no_disk = _long()
    no_disk = no_disk[~no_disk["stratum"].str.startswith("disk")]
    assert (run_verdicts(no_disk).query("target == 'leakage `each_disk` <= 0.05'")["verdict"]
            == NOT_JUDGED).all()  # fmt: skip


def test_a_nan_or_missing_metric_is_not_judged_never_passing():
    long = _long(changes={1: {("inside_bg_on", "auroc"): math.nan}})
    long = long[~((long["seed"] == 2) & (long["metric"] == "leakage"))]  # no row at all
    verdicts = run_verdicts(long)
    overall = verdicts.query("model == 'm' and target == @ALL").set_index("seed")["verdict"]
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
    assert verdicts.query("model == 'm' and seed == 0 and target == @ALL")["verdict"].item() == (
        "fail"
    )


def _tables(long):
    """The long values back into rates.csv / separation.csv form, with the run keys."""
    keys = ["scenario", "model", "seed"]
    rate_rows = long[long["metric"].isin(["tpr", "fpr", "auroc"])]
    rates = rate_rows.pivot_table(index=[*keys, "stratum"], columns="metric", values="value")
    rates = rates.reset_index()
    for metric in METRICS:
        if metric not in rates:
            rates[metric] = 0.5
    regions = (long["stratum"] == "active_disks") | long["stratum"].str.startswith("disk")
    separation = long[regions].rename(columns={"stratum": "region"})
    return rates, separation


def test_pass_counts_are_rows_of_the_summary_and_the_wide_table():
    long = pd.concat(
        # raw's runs are held to the ceiling of the same scenario and seeds
        [_long(changes={4: {("inside_bg_on", "tpr"): 0.9}}), _long(model="raw", ceiling=False)]
    )
    rates, separation = _tables(long)
    table = summarise(rates, separation, ["x90"], ["m", CEILING, "raw"])
    passing = table.query("stratum == 'targets' and metric == 'runs_passing'")
    assert passing["model"].tolist() == ["m", "bayes", "raw"]
    assert passing["n_seeds"].tolist() == [5, 5, 5]
    assert (passing["mean"] * passing["n_seeds"]).tolist() == [4, 5, 5]
    tpr = table.query("model == 'm' and metric == 'pass_tpr_inside_bg_on'")
    assert tpr["stratum"].item() == "targets"
    assert tpr["mean"].item() == pytest.approx(0.8) and math.isnan(tpr["std"].item())
    blocks = [model for model, _ in itertools.groupby(table["model"])]
    assert blocks == ["m", "bayes", "raw"]  # each model's rows in one block, in order
    cells = wide(table, ["x90"]).set_index(["model", "stratum", "metric"])["x90"]
    assert cells["m", "targets", "runs_passing"].startswith("4 of 5 [0.28, 0.99]")
    assert cells["raw", "targets", "runs_not_judged"].startswith("0 of 5")


def test_targets_are_the_specs_bounds():
    bounds = {(t.stratum, t.metric): (t.side, t.bound, t.relative) for t in TARGETS}
    assert bounds == {
        ("inside_bg_on", "auroc"): (">=", -0.005, True),
        ("inside_bg_on", "tpr"): (">=", -0.03, True),
        ("inside_bg_on", "fpr"): ("<=", 0.01, True),
        ("active_disks", "leakage"): ("<=", 0.03, False),
        ("active_disks", "leakage_ratio"): ("<=", 0.03, False),
        ("each_disk", "leakage"): ("<=", 0.05, False),
        ("outside", "auroc"): (">=", -0.005, True),
        ("inside_bg_off", "auroc"): (">=", -0.005, True),
    }


def test_log_loss_excess_is_the_distance_from_the_ceiling_of_the_same_run():
    long = pd.DataFrame(
        [
            ("s", CEILING, 0, "inside_bg_on", "log_loss", 0.05),
            ("s", CEILING, 1, "inside_bg_on", "log_loss", 0.10),
            ("s", "m", 0, "inside_bg_on", "log_loss", 0.30),
            ("s", "m", 1, "inside_bg_on", "log_loss", 0.10),
            ("t", "m", 0, "inside_bg_on", "log_loss", 0.20),  # no ceiling: no excess
        ],
        columns=["scenario", "model", "seed", "stratum", "metric", "value"],
    )
    excess = excess_over_ceiling(long, "log_loss").set_index(["model", "seed"])
    assert excess.loc[("m", 0), "value"] == pytest.approx(0.25)
    assert excess.loc[("m", 1), "value"] == pytest.approx(0.0)
    assert excess.loc[(CEILING, 0), "value"] == 0
    assert set(excess["metric"]) == {"log_loss_excess"}
    assert "t" not in set(excess["scenario"])
