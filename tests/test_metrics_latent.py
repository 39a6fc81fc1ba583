"""Latent probes and the background-branch error."""

import math

import numpy as np
import pytest

from fgbg.metrics.latent import background_error, latent_table, probe, symmetric_auroc


def test_symmetric_auroc_ignores_the_sign_of_an_axis():
    truth = np.array([0, 0, 1, 1])
    assert symmetric_auroc(truth, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert symmetric_auroc(truth, -np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert math.isnan(symmetric_auroc(np.array([1, 1]), np.array([0.0, 1.0])))


def test_probe_reads_an_informative_block_and_not_noise():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400)
    informative = np.c_[truth + 0.1 * rng.standard_normal(400), rng.standard_normal(400)]
    noise = rng.standard_normal((400, 2))
    assert probe(truth, informative)["probe_accuracy"] > 0.95
    assert probe(truth, informative)["probe_auroc"] > 0.95
    assert 0.35 < probe(truth, noise)["probe_auroc"] < 0.65
    assert probe(truth, noise)["chance_accuracy"] == pytest.approx(
        max(truth.mean(), 1 - truth.mean())
    )


def test_probe_on_a_single_class_is_nan():
    result = probe(np.ones(50, dtype=int), np.zeros((50, 1)))
    assert math.isnan(result["probe_accuracy"]) and result["chance_accuracy"] == 1.0
    assert math.isnan(probe(np.r_[np.ones(49), 0].astype(int), np.zeros((50, 1)))["probe_auroc"])


def test_latent_table_rows():
    rng = np.random.default_rng(0)
    disk = rng.integers(0, 2, (300, 2))
    cell = rng.integers(0, 2, (300, 3))
    codes = {"z1": np.c_[cell[:, 0], rng.standard_normal((300, 3))], "z2": disk[:, :1] * 1.0}
    table = latent_table(codes, disk, cell)
    assert list(table.columns) == ["latent", "dim", "target", "metric", "value"]
    one = table.set_index(["latent", "dim", "target", "metric"])["value"]
    assert one["z2", "0", "disk0", "auroc"] == 1.0
    assert one["z1", "0", "cell0", "auroc"] == 1.0
    assert one["z1", "block", "cell0", "probe_accuracy"] == 1.0
    assert one["all", "block", "disk0", "probe_auroc"] == 1.0
    assert one["z2", "block", "disk1", "probe_auroc"] < 0.65
    # 5 targets x (4 + 1 single-dim AUROCs + 3 blocks x 3 probe metrics)
    assert len(table) == 5 * (5 + 9)


def test_background_error():
    target = np.array([[0.0, 1.0], [0.5, 0.25]])
    perfect = background_error(target, target)
    assert perfect["mae"] == 0
    # BCE of a perfect prediction is the target's own entropy: ln 2 at 0.5
    assert perfect["bce"] == pytest.approx(
        (math.log(2) - 0.25 * math.log(0.25) - 0.75 * math.log(0.75)) / 4, abs=1e-5
    )
    assert background_error(np.full((2, 2), 0.5), target)["mae"] == pytest.approx(0.3125)


def test_a_spatial_latent_map_is_not_probed():
    rng = np.random.default_rng(0)
    disk = rng.integers(0, 2, (100, 1))
    cell = rng.integers(0, 2, (100, 2))
    codes = {"z_fg": rng.standard_normal((100, 17)), "z_bg": disk * 1.0}
    table = latent_table(codes, disk, cell)
    assert set(table["latent"]) == {"z_bg"}  # 17 > MAX_PROBED_DIMS dimensions: skipped
    assert len(table) == 3 * (1 + 3)
