"""Separation metrics, reference methods, novelty and per-cell rates (issue: measurements
that can fail). Each metric gets a case where it must come out bad."""

import math

import numpy as np
import pandas as pd
import pytest
from eval_helpers import CONFIG, clean_split, overlap_of

from fgbg.config import scenario_params
from fgbg.evaluate import disk_coverage, evaluate
from fgbg.generate import Sampler
from fgbg.metrics.rates import cell_rates_table, cell_table, rates_table
from fgbg.metrics.separation import separation_table
from fgbg.novelty import novelty_facts, seen_in
from fgbg.references import annuli, neuropil_scores, reference_outputs
from fgbg.store import _dataset
from fgbg.summary import t_interval


def real_split(scenario="x90", n=300, seed=0, split="test"):
    """Images drawn by the project's generator for the default geometry."""
    params = scenario_params(CONFIG, scenario)
    sampler = Sampler(params)
    batch = sampler.generate(seed, scenario, split, 0, n)
    return _dataset(batch, sampler.cell_masks, sampler.disk_masks)


def _separation(data, foreground):
    table = separation_table(
        foreground,
        data["cell_mask"].values,
        data["disk_mask"].values,
        data["cell_active"].values,
        data["disk_active"].values,
    )
    return table.set_index(["region", "metric"])["value"]


def _cover(data):
    cells = data["cell_mask"].values.astype(bool)
    active_cells = np.einsum("nc,cyx->nyx", data["cell_active"].values, cells) > 0
    disks = data["disk_mask"].values.astype(bool)
    active_disks = np.einsum("nd,dyx->nyx", data["disk_active"].values, disks) > 0
    return active_cells, active_disks


def test_true_cells_leak_nothing_and_rank_perfectly():
    data = clean_split("x90_20", n=100)
    cells, _ = _cover(data)
    result = _separation(data, cells.astype(float))
    assert result["active_disks", "leakage"] == 0 and result["disk1", "leakage"] == 0
    assert result["inside_active_disks", "pixel_ap"] == 1
    assert result["outside_active_disks", "pixel_ap"] == 1


def test_an_output_that_draws_the_disk_leaks_what_it_draws():
    data = clean_split("x90_20", n=100)
    cells, disks = _cover(data)
    foreground = np.where(cells, 1.0, np.where(disks, 0.3, 0.0))
    result = _separation(data, foreground)
    assert result["active_disks", "leakage"] == pytest.approx(0.3)
    assert result["disk0", "leakage"] == pytest.approx(0.3)
    # cells still ranked above the disk: AP 1; ranked level with it: AP far below 1
    assert result["inside_active_disks", "pixel_ap"] == pytest.approx(1.0)
    flat = np.where(cells | disks, 1.0, 0.0)
    flat_result = _separation(data, flat)
    assert flat_result["active_disks", "leakage"] == 1.0
    assert flat_result["inside_active_disks", "pixel_ap"] < 0.5


def test_no_active_disk_gives_empty_separation_metrics():
    data = clean_split("x90", n=20)
    data["disk_active"][:] = 0
    cells, _ = _cover(data)
    result = _separation(data, cells.astype(float))
    assert math.isnan(result["disk0", "leakage"])
    assert math.isnan(result["inside_active_disks", "pixel_ap"])
    assert result["outside_active_disks", "pixel_ap"] == 1


def _tables(data, kind):
    outputs = reference_outputs({"type": kind}, data)
    novel = np.ones(data.sizes["sample"], bool)
    return evaluate(outputs, data, 0.5, novel=novel)


def test_raw_reference_keeps_everything():
    data = real_split("x90", n=300)
    tables = _tables(data, "raw")
    rates = tables["rates"].set_index("stratum")
    assert rates.loc["inside_bg_on", "auroc"] >= 0.99  # the information is in the input
    assert rates.loc["inside_bg_on", "fpr"] > 0.5  # ... and so is the background
    leakage = tables["separation"].set_index(["region", "metric"])["value"]
    assert 0.8 < leakage["active_disks", "leakage"] < 0.88  # disk pixels on ~84 %


def test_truth_reference_is_perfect():
    data = real_split("x90_20", n=200)
    tables = _tables(data, "truth")
    rates = tables["rates"]
    assert (rates["auroc"].dropna() == 1).all() and (rates["fpr"].dropna() == 0).all()
    assert (rates["tpr"].dropna() == 1).all()
    separation = tables["separation"].set_index(["region", "metric"])["value"]
    assert separation["active_disks", "leakage"] == 0


def test_neuropil_annulus_and_score_by_hand():
    cells = np.zeros((2, 12, 12), bool)
    cells[0, 2:4, 2:4] = True
    cells[1, 8:10, 8:10] = True
    rings = annuli(cells, inner=1, outer=2)
    # cell 0's ring: within 2 pixels of it, more than 1 pixel from every cell
    expected = np.zeros((12, 12), bool)
    expected[0:6, 0:6] = True
    expected[1:5, 1:5] = False
    assert (rings[0] == expected).all()
    image = np.zeros((1, 12, 12))
    image[0, 2:4, 2:4] = 1.0
    image[0][expected] = 0.5
    score = neuropil_scores(image, cells, factor=0.7, inner=1, outer=2)
    assert score[0, 0] == pytest.approx(1.0 - 0.7 * 0.5)
    assert score[0, 1] == pytest.approx(0.0)


def test_neuropil_separates_cells_better_than_nothing_but_not_perfectly():
    data = real_split("x90", n=300)
    auroc = _tables(data, "neuropil")["rates"].set_index("stratum")["auroc"]
    assert auroc["outside"] == 1
    assert 0.5 < auroc["inside_bg_on"] <= 1


def test_novelty_marks_exact_copies_only():
    train = np.zeros((3, 2, 2), np.uint8)
    train[1, 0, 0] = 1
    held_out = np.zeros((3, 2, 2), np.uint8)
    held_out[1, 0, 0] = 1
    held_out[2, 1, 1] = 1
    assert seen_in(train, held_out).tolist() == [True, True, False]


def test_disk_off_images_repeat_and_the_card_counts_them():
    data = real_split("x50", n=400, split="test")
    train = real_split("x50", n=2000, split="train")
    seen = seen_in(train["images"].values, data["images"].values)
    facts = novelty_facts(seen, overlap_of(data), data["disk_active"].values)
    # noise-free disk-off images: 2^10 possibilities, many repeat; noisy disk-on ones never
    assert facts["by_background"]["some_disk_on"] == 0
    assert facts["by_background"]["all_disks_off"] > 0.3
    assert facts["by_stratum"]["inside_bg_on"] == 0
    assert facts["fraction_seen"] == pytest.approx(seen.mean())


def test_novel_strata_are_the_rates_on_novel_images():
    data = clean_split("x90", n=200)
    rng = np.random.default_rng(0)
    score = rng.random(data["cell_active"].shape)
    novel = rng.random(200) < 0.5
    args = (data["cell_active"].values, score, score, overlap_of(data), data["disk_active"].values)
    table = rates_table(cell_table(*args, novel), 0.5, 1).set_index("stratum")
    subset = cell_table(*(a[novel] if a.ndim and a.shape[0] == 200 else a for a in args))
    expected = rates_table(subset, 0.5, 1).set_index("stratum")
    for stratum in ("outside", "inside_bg_on", "all"):
        assert table.loc[f"{stratum}_novel", "tpr"] == expected.loc[stratum, "tpr"]
        assert table.loc[f"{stratum}_novel", "n"] == expected.loc[stratum, "n"]


def test_per_cell_rates_keep_a_partially_covered_cell_apart():
    data = clean_split("x90", n=300)
    cells = data["cell_mask"].values
    coverage = disk_coverage(cells, data["disk_mask"].values)
    # under the x90 disk: cells 5 and 7 fully, cell 6 half and cell 9 mostly
    assert coverage[6] == pytest.approx(17 / 36) and coverage[9] == pytest.approx(32 / 36)
    assert sorted(np.flatnonzero(coverage == 1)) == [5, 7]
    # an output that copies the disk: fully covered cells always "on", cell 6 never
    score = np.where(data["disk_active"].values[:, :1] == 1, coverage >= 1, 0).astype(float)
    score = np.maximum(score, data["cell_active"].values)
    args = (data["cell_active"].values, score, score, overlap_of(data))
    table = cell_rates_table(cell_table(*args, data["disk_active"].values), 0.5, coverage)
    on = table[table["stratum"] == "inside_bg_on"].set_index("cell")
    assert on.loc[6, "fpr"] == 0 and on.loc[6, "disk_coverage"] == pytest.approx(17 / 36)
    assert (on.loc[[5, 7], "fpr"] == 1).all() and on.loc[9, "fpr"] == 0
    assert set(table["stratum"]) == {"outside", "inside_bg_off", "inside_bg_on"}
    assert isinstance(table, pd.DataFrame)


def test_rate_intervals_stay_within_zero_and_one():
    free = t_interval([1.0, 1.0, 0.9])
    clipped = t_interval([1.0, 1.0, 0.9], bounds=(0, 1))
    assert free["ci95_high"] > 1 and clipped["ci95_high"] == 1
    assert clipped["ci95_low"] == free["ci95_low"] and clipped["mean"] == free["mean"]


def test_opening_reference_keeps_solid_cells_and_drops_a_noisy_disk():
    data = real_split("x90", n=300)
    tables = _tables(data, "opening")
    rates = tables["rates"].set_index("stratum")
    assert rates.loc["inside_bg_on", "auroc"] > 0.95 and rates.loc["outside", "auroc"] == 1
    leakage = tables["separation"].set_index(["region", "metric"])["value"]
    assert leakage["active_disks", "leakage"] < 0.2  # raw keeps ~0.84


def test_leakage_ratio_is_scale_free_where_leakage_is_not():
    """0.6 x an output lowers leakage by 40 % and leaves leakage_ratio exactly where it was;
    the raw image keeps a high ratio, the truth 0."""
    data = real_split("x90_20", n=300)
    raw = data["images"].values.astype(float)
    full, scaled = _separation(data, raw), _separation(data, 0.6 * raw)
    for region in ("disk0", "disk1", "active_disks"):
        assert scaled[region, "leakage"] == pytest.approx(0.6 * full[region, "leakage"])
        assert scaled[region, "leakage"] < full[region, "leakage"]
        assert scaled[region, "leakage_ratio"] == pytest.approx(
            full[region, "leakage_ratio"], rel=1e-12
        )
    assert 0.75 < full["active_disks", "leakage_ratio"] < 0.9  # cells 1, disk pixels ~0.84
    cells, _ = _cover(data)
    assert _separation(data, cells.astype(float))["active_disks", "leakage_ratio"] == 0


def test_leakage_ratio_denominator_is_the_cells_under_the_disk():
    """An output that dims everything under an active disk (cells too) leaks little in
    absolute terms but keeps its ratio; no active cell under the disk gives NaN."""
    data = clean_split("x90", n=100)
    cells, disks = _cover(data)
    dimmed = np.where(disks, 0.1 * np.where(cells, 1.0, 0.8), cells.astype(float))
    result = _separation(data, dimmed)
    assert result["active_disks", "leakage"] == pytest.approx(0.08)
    assert result["active_disks", "leakage_ratio"] == pytest.approx(0.8)
    data["cell_active"][:] = 0
    empty = _separation(data, np.where(disks, 0.5, 0.0))
    assert math.isnan(empty["active_disks", "leakage_ratio"])
    assert math.isnan(empty["disk0", "leakage_ratio"])
