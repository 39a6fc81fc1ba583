"""Per-cell rates by stratum: oracles, hand-built counts and the NaN rule."""

import math

import numpy as np
import pandas as pd
import pytest
from eval_helpers import clean_split, overlap_of

from fgbg.metrics.rates import cell_table, rates, rates_table, strata, stratum_names


def test_strata_follow_overlap_and_disk_activity():
    # cell 0 overlaps no disk, cell 1 disk 0, cell 2 disks 0 and 1
    overlap = np.array([[0, 0], [1, 0], [1, 1]], dtype=bool)
    disk_active = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
    assert strata(overlap, disk_active).tolist() == [
        ["outside", "inside_bg_off", "inside_bg_off"],
        ["outside", "inside_bg_on", "inside_bg_on"],
        ["outside", "inside_bg_off", "inside_bg_on"],
        ["outside", "inside_bg_on", "inside_bg_on"],
    ]


def test_hand_built_counts():
    truth = np.array([1, 1, 1, 0, 0, 0, 0])
    score = np.array([0.9, 0.6, 0.4, 0.7, 0.5, 0.1, 0.2])  # 0.5 is not above 0.5
    result = rates(truth, score, threshold=0.5)
    assert (result["positives"], result["negatives"]) == (3, 4)
    assert (result["tp"], result["fp"]) == (2, 1)
    assert result["tpr"] == pytest.approx(2 / 3) and result["fpr"] == pytest.approx(1 / 4)
    assert result["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    # pairs (pos, neg) ranked correctly: 0.9 beats all 4; 0.6 beats 3 of 4; 0.4 beats 2 of 4
    assert result["auroc"] == pytest.approx((4 + 3 + 2) / 12)


def test_missing_class_gives_nan_not_a_crash():
    only_pos = rates(np.array([1, 1]), np.array([0.9, 0.1]), 0.5)
    assert only_pos["tpr"] == 0.5 and math.isnan(only_pos["fpr"]) and math.isnan(only_pos["auroc"])
    empty = rates(np.array([], dtype=int), np.array([]), 0.5)
    assert empty["n"] == 0 and math.isnan(empty["tpr"]) and math.isnan(empty["auroc"])
    no_score = rates(np.array([1, 0]), np.array([np.nan, np.nan]), 0.5)
    assert math.isnan(no_score["tpr"]) and math.isnan(no_score["tp"])


def _table(dataset, score, score_off=None):
    return cell_table(
        dataset["cell_active"].values,
        score,
        score if score_off is None else score_off,
        overlap_of(dataset),
        dataset["disk_active"].values,
    )


@pytest.mark.parametrize("scenario", ["x90", "x90_20"])
def test_true_foreground_is_perfect_in_every_stratum(scenario):
    data = clean_split(scenario)
    truth = data["cell_active"].values.astype(float)
    n_disks = data.sizes["disk"]
    table = rates_table(_table(data, truth), 0.5, n_disks).set_index("stratum")
    assert list(table.index) == stratum_names(n_disks)
    assert (table["positives"] > 0).all() and (table["negatives"] > 0).all()
    for suffix in ("", "_z2_off"):
        assert (table[f"tpr{suffix}"] == 1).all()
        assert (table[f"fpr{suffix}"] == 0).all()
        assert (table[f"auroc{suffix}"] == 1).all()


def test_constant_output_has_auroc_one_half():
    data = clean_split("x90_20")
    constant = np.full(data["cell_active"].shape, 0.7)
    table = rates_table(_table(data, constant), 0.5, 2)
    assert (table["auroc"] == 0.5).all()
    assert (table["tpr"] == 1).all() and (table["fpr"] == 1).all()


def test_pooled_and_per_disk_counts_add_up():
    data = clean_split("x90_20")
    rng = np.random.default_rng(1)
    cells = _table(data, rng.random(data["cell_active"].shape))
    table = rates_table(cells, 0.5, 2).set_index("stratum")
    for column in ("n", "positives", "negatives", "tp", "fp", "tp_z2_off"):
        assert (
            table.loc["inside", column]
            == table.loc[["inside_bg_off", "inside_bg_on"], column].sum()
        )
        assert table.loc["all", column] == table.loc[["outside", "inside"], column].sum()
    # in the default geometry no cell overlaps both disks: per-disk strata partition inside
    assert table.loc["inside", "n"] == table.loc[["disk0_inside", "disk1_inside"], "n"].sum()
    assert table.loc["disk1_inside", "n"] == 2 * len(cells["sample"].unique())
    assert table.loc["disk0_inside", "n"] == 3 * len(cells["sample"].unique())


def test_rates_recomputed_from_the_cells_table_with_pandas():
    data = clean_split("x90")
    rng = np.random.default_rng(2)
    cells = _table(data, rng.random(data["cell_active"].shape))
    table = rates_table(cells, 0.5, 1).set_index("stratum")
    for stratum, group in cells.groupby("stratum"):
        on = group["truth"] == 1
        pred = group["score"] > 0.5
        assert table.loc[stratum, "tpr"] == pytest.approx((pred & on).sum() / on.sum())
        assert table.loc[stratum, "fpr"] == pytest.approx((pred & ~on).sum() / (~on).sum())
    assert list(cells.columns) == [
        "sample",
        "cell",
        "truth",
        "score",
        "score_z2_off",
        "stratum",
        "disks",
        "novel",
    ]
    assert set(cells["disks"]) == {"none", "0"}
    assert isinstance(cells, pd.DataFrame)


def test_log_loss_sees_calibration_that_auroc_does_not():
    # the same ranking scaled towards 0: AUROC unchanged, the log loss worse, and the
    # hand-computed value for the calibrated scores
    truth = np.array([1, 1, 0, 0])
    calibrated = np.array([0.9, 0.8, 0.2, 0.1])
    shrunk = calibrated / 4
    assert rates(truth, shrunk, 0.5)["auroc"] == rates(truth, calibrated, 0.5)["auroc"] == 1.0
    expected = -(2 * math.log(0.9) + 2 * math.log(0.8)) / 4
    assert rates(truth, calibrated, 0.5)["log_loss"] == pytest.approx(expected)
    assert rates(truth, shrunk, 0.5)["log_loss"] > rates(truth, calibrated, 0.5)["log_loss"] + 0.5


def test_log_loss_is_nan_for_scores_that_are_not_probabilities():
    truth = np.array([1, 0])
    assert math.isnan(rates(truth, np.array([1.3, -0.2]), 0.5)["log_loss"])
    assert math.isfinite(rates(truth, np.array([1.0, 0.0]), 0.5)["log_loss"])  # clipped
