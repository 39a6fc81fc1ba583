"""fgbg.bayes: the exact posterior against the generator, by hand, and where it must differ."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from fgbg.bayes import (
    ATOM_TOLERANCE,
    MAX_DISKS,
    cell_posteriors,
    foreground,
    pixel_on_probability,
)
from fgbg.config import load_config, scenario_params
from fgbg.generate import Sampler
from fgbg.layout import overlaps, scenario_masks

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load_config(yaml.safe_load((ROOT / "config.yaml").read_text()))
SEED = CONFIG["data"]["seed"]
Z = 3.29  # two-sided 99.9 %: the data are deterministic, so this is a check, not a flake


def cdf(z):
    return 0.5 * math.erfc(-z / math.sqrt(2))


def pdf(z):
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def thesis(scenario="x90", sd=None, binarize=True):
    p = scenario_params(CONFIG, scenario)
    if sd is not None:
        p["noise"]["sd"] = sd
    p["binarize"]["enabled"] = binarize
    return p


def small(region):
    """16 x 16, five 3 x 3 cells, two overlapping disks of different intensities."""
    return {
        "image": {"height": 16, "width": 16},
        "cells": {
            "size": 3,
            "intensity": 0.45,
            "probability": 0.4,
            "positions": [[1, 1], [1, 9], [6, 5], [11, 2], [11, 11]],
        },
        "disks": [
            {"center": [6, 6], "diameter": 10, "intensity": 0.35, "probability": 0.6},
            {"center": [10, 10], "diameter": 8, "intensity": 0.25, "probability": 0.5},
        ],
        "noise": {"mean": 0.1, "sd": 0.3, "region": region},
        "binarize": {"enabled": True, "threshold": 0.5},
    }


def tiny(sd=0.5, binarize=True):
    """2 x 2: a 1 x 1 cell at (0, 0); a disk over the top row; all values exact in float32."""
    return {
        "image": {"height": 2, "width": 2},
        "cells": {"size": 1, "intensity": 0.75, "probability": 0.25, "positions": [[0, 0]]},
        "disks": [{"center": [0.5, 1], "diameter": 1.5, "intensity": 0.5, "probability": 0.75}],
        "noise": {"mean": 0.25, "sd": sd, "region": "background"},
        "binarize": {"enabled": binarize, "threshold": 0.5},
    }


@pytest.mark.parametrize("region", ["background", "everywhere"])
def test_pixel_on_probabilities_match_the_generator(region):
    p = small(region)
    batch = Sampler(p).generate(SEED, "small", "train", 0, 3000)
    predicted = pixel_on_probability(p, batch.cell_active, batch.disk_active)
    assert predicted.shape == batch.images.shape
    values, classes = np.unique(predicted.round(12), return_inverse=True)
    assert len(values) >= 6  # (cell, disk, disk) states give many distinct classes
    on = batch.images.ravel().astype(bool)
    for k, q in enumerate(values):
        member = classes.ravel() == k
        n, successes = member.sum(), on[member].sum()
        if q in (0.0, 1.0):
            assert successes == q * n, f"deterministic class {q}: {successes}/{n}"
        else:
            half = Z * math.sqrt(q * (1 - q) / n)
            assert abs(successes / n - q) <= half, f"{successes}/{n} vs {q:.4f}"


def test_spec_pixel_probabilities_on_the_thesis_geometry():
    p = thesis()
    cells, disks = scenario_masks(p)
    cell, disk = cells.any(axis=0), disks[0]
    on = pixel_on_probability(p, np.ones(len(cells)), [1])
    assert (on[~cell & ~disk] == 0).all()
    assert (cell & ~disk).any() and (on[cell & ~disk] == 1).all()
    assert on[~cell & disk] == pytest.approx(cdf(1.0), abs=1e-6)  # 0.841
    assert on[cell & disk] == pytest.approx(cdf(3.25), abs=1e-6)  # 0.9994
    assert cdf(1.0) == pytest.approx(0.841, abs=5e-4) and cdf(3.25) == pytest.approx(0.9994, 1e-4)
    assert (pixel_on_probability(p, np.zeros(len(cells)), [0]) == 0).all()


@pytest.fixture(scope="module")
def noisy_x90_20():
    """x90_20 with sd 1.5: many cells are ambiguous, so calibration is testable."""
    p = thesis("x90_20", sd=1.5)
    batch = Sampler(p).generate(SEED, "x90_20", "val", 0, 3000)
    return p, batch, cell_posteriors(batch.images, p)


def test_posteriors_are_calibrated(noisy_x90_20):
    _, batch, post = noisy_x90_20
    truth = batch.cell_active.astype(bool)
    assert post.dtype == np.float64 and post.shape == truth.shape
    assert ((post > 0.05) & (post < 0.95)).sum() > 300  # enough ambiguous cells to test
    bins = np.clip(np.digitize(post, np.linspace(0, 1, 11)) - 1, 0, 9)
    for k in range(10):
        m = bins == k
        spread = Z * math.sqrt((post[m] * (1 - post[m])).sum())
        assert abs(truth[m].sum() - post[m].sum()) <= spread + 1e-6, f"bin {k}"
    # the mean posterior is the prior's mean
    assert abs(post.mean() - 0.5) <= Z * math.sqrt(0.25 / post.size)


def test_posterior_separates_cells_inside_active_disks():
    p = thesis("x90")
    sampler = Sampler(p)
    batch = sampler.generate(SEED, "x90", "test", 0, 1000)
    post = cell_posteriors(batch.images, p)
    truth = batch.cell_active.astype(bool)
    inside = overlaps(sampler.cell_masks, sampler.disk_masks)[:, 0] & batch.disk_active[
        :, :1
    ].astype(bool)
    assert inside.sum() > 1000
    assert roc_auc_score(truth[inside], post[inside]) > 0.999
    # outside active disks a cell is seen exactly: every pixel on iff active
    assert np.array_equal(post[~inside], truth[~inside].astype(float))


def test_float_images_posterior():
    p = thesis("x90_20", binarize=False)
    # image 9 has a noisy pixel within 1e-6 of a noise-free value (a chance of about 1e-6
    # per noisy pixel): it must not rule out the true state
    batch = Sampler(p).generate(SEED, "x90_20", "test", 0, 200)
    post = cell_posteriors(batch.images, p)
    assert np.abs(post - batch.cell_active).max() < 1e-3


def test_hand_computed_binary_posteriors():
    p = tiny()
    cells, disks = scenario_masks(p)
    assert cells[0].tolist() == [[True, False], [False, False]]
    assert disks[0].tolist() == [[True, True], [False, False]]
    # cell pixel: cell + disk 0.75 + 0.5 + 0.25 noise mean: on w.p. Phi((1.5 - 0.5) / 0.5)
    # = Phi(2); cell alone 0.75 > 0.5, no noise: on; disk alone 0.5 + 0.25: Phi(0.5);
    # nothing: off. The disk-only pixel: Phi(0.5) or off. Priors: cell 1/4, disk 3/4.
    f2, f5, g2, g5 = cdf(2), cdf(0.5), cdf(-2), cdf(-0.5)
    images = np.array([[[1, 1], [0, 0]], [[1, 0], [0, 0]], [[0, 0], [0, 0]], [[0, 1], [0, 0]]])
    expected = [
        # disk off is impossible (its pixel is on), so only c = 1, 0 with d = 1
        0.25 * f2 * f5 / (0.25 * f2 * f5 + 0.75 * f5 * f5),
        # (c, d) = (1, 1), (1, 0), (0, 1); (0, 0) cannot turn the cell pixel on
        0.25 * (0.75 * f2 * g5 + 0.25) / (0.25 * (0.75 * f2 * g5 + 0.25) + 0.75 * 0.75 * f5 * g5),
        # (1, 0) cannot turn the cell pixel off
        0.25 * 0.75 * g2 * g5 / (0.25 * 0.75 * g2 * g5 + 0.75 * (0.75 * g5 * g5 + 0.25)),
        0.25 * g2 * f5 / (0.25 * g2 * f5 + 0.75 * g5 * f5),
    ]
    post = cell_posteriors(images, p)
    np.testing.assert_allclose(post[:, 0], expected, rtol=0, atol=1e-9)
    painted = foreground(images, p)
    assert painted.dtype == np.float32 and painted.shape == (4, 2, 2)
    np.testing.assert_allclose(painted[:, 0, 0], expected, atol=1e-7)
    assert (painted.reshape(4, -1)[:, 1:] == 0).all()
    # a wrong noise sd gives another answer (so this comparison can fail)
    assert np.abs(cell_posteriors(images, tiny(sd=0.6))[:, 0] - expected).max() > 0.01
    # a pixel outside every disk and cell is never on
    with pytest.raises(ValueError, match="impossible"):
        cell_posteriors(np.array([[[0, 0], [1, 0]]]), p)


def test_hand_computed_float_posteriors():
    p, e = tiny(binarize=False), 2 * ATOM_TOLERANCE / 0.5  # Gaussian mass of a +-tol window
    images = np.array(
        [[[1.375, 0.6875], [0, 0]], [[0.75, 0], [0, 0]], [[0, 0], [0, 0]]], dtype=np.float32
    )
    # noisy means: cell + disk 1.5, disk alone 0.75 (sd 0.5); noise-free: cell 0.75, else 0
    z = (1.375 - 1.5) / 0.5, (1.375 - 0.75) / 0.5, (0.6875 - 0.75) / 0.5
    first = 0.25 * pdf(z[0]) / (0.25 * pdf(z[0]) + 0.75 * pdf(z[1]))  # disk off: impossible
    # all zero: (0, 0) exact; the disk-on states put both zeros in +-tol windows of noise
    on = 0.25 * 0.75 * pdf(-3) * e * pdf(-1.5) * e
    third = on / (on + 0.75 * 0.75 * (pdf(-1.5) * e) ** 2 + 0.75 * 0.25)
    post = cell_posteriors(images, p)[:, 0]
    assert post[0] == pytest.approx(first, abs=1e-9)
    # the cell pixel is exactly 0.75: cell on and disk off, unless noise hit both values
    active = 0.25 * (0.25 + 0.75 * (pdf(-1.5) * e) ** 2)  # (c, d) = (1, 0) and (1, 1)
    second = active / (active + 0.75 * 0.75 * pdf(0) * pdf(-1.5) * e**2)  # and (0, 1)
    assert post[1] == pytest.approx(second, abs=1e-15) and 1 - 1e-10 < post[1] < 1
    assert post[2] == pytest.approx(third, rel=1e-6) and 0 < post[2] < 1e-12
    assert cell_posteriors(images, tiny(sd=0.6, binarize=False))[0, 0] != pytest.approx(first)


def test_flipping_a_pixel_moves_the_posterior(noisy_x90_20):
    p, batch, post = noisy_x90_20
    sampler = Sampler(p)
    image, k = next((i, k) for i, k in zip(*np.nonzero((post > 0.2) & (post < 0.8)), strict=True))
    pixels = np.flatnonzero(sampler.cell_masks[k].ravel())
    flat = batch.images[image].ravel()
    off, on = pixels[flat[pixels] == 0][0], pixels[flat[pixels] == 1][0]
    up, down = flat.copy(), flat.copy()
    up[off], down[on] = 1, 0
    moved = cell_posteriors(np.stack([up, down]).reshape(2, 60, 60), p)[:, k]
    assert moved[0] > post[image, k] + 0.01 and moved[1] < post[image, k] - 0.01
    # a wrong noise sd changes the thesis posteriors
    x90 = thesis("x90")
    images = Sampler(x90).generate(SEED, "x90", "test", 0, 300).images
    other = cell_posteriors(images, thesis("x90", sd=0.5))
    assert np.abs(cell_posteriors(images, x90) - other).max() > 0.1


def test_clear_errors():
    p = tiny()
    p["cells"]["positions"] = [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="overlap"):
        cell_posteriors(np.zeros((1, 2, 2)), p)
    p = tiny()
    p["disks"] = p["disks"] * (MAX_DISKS + 1)
    with pytest.raises(ValueError, match="MAX_DISKS"):
        cell_posteriors(np.zeros((1, 2, 2)), p)
    with pytest.raises(ValueError, match="not 0/1"):
        cell_posteriors(np.full((1, 2, 2), 0.5), tiny())
    with pytest.raises(ValueError, match="shape"):
        cell_posteriors(np.zeros((1, 3, 2)), tiny())


def soft(binarize, region="everywhere"):
    """`small` with soft-edged disks (edges 1.5 and 2 px) and dim cells."""
    p = small(region)
    p["cells"]["intensity"] = 0.3
    p["disks"][0]["edge"], p["disks"][1]["edge"] = 1.5, 2.0
    p["binarize"]["enabled"] = binarize
    return p


def test_soft_edged_binary_pixel_probabilities_match_the_generator():
    p = soft(binarize=True)
    batch = Sampler(p).generate(SEED, "soft", "train", 0, 3000)
    predicted = pixel_on_probability(p, batch.cell_active, batch.disk_active)
    values, classes = np.unique(predicted.round(12), return_inverse=True)
    assert len(values) > 50  # the profiles give almost every pixel its own probability
    on = batch.images.ravel().astype(bool)
    for k, q in enumerate(values):
        member = classes.ravel() == k
        n, successes = member.sum(), on[member].sum()
        assert abs(successes - q * n) <= Z * math.sqrt(n * q * (1 - q)) + 1e-9


@pytest.mark.parametrize("binarize", [False, True])
def test_soft_edged_posteriors_are_calibrated(binarize):
    """Intensity (and binary) images of soft-edged disks and dim cells: the posterior is
    calibrated against the generator's states, bin by bin."""
    p = soft(binarize)
    batch = Sampler(p).generate(SEED, "soft", "val", 0, 3000)
    post, truth = cell_posteriors(batch.images, p), batch.cell_active.astype(bool)
    assert ((post > 0.05) & (post < 0.95)).sum() > 300
    bins = np.clip(np.digitize(post, np.linspace(0, 1, 11)) - 1, 0, 9)
    for k in range(10):
        m = bins == k
        spread = Z * math.sqrt((post[m] * (1 - post[m])).sum())
        assert abs(truth[m].sum() - post[m].sum()) <= spread + 1e-6, f"bin {k}"
