"""The generator: rates within binomial confidence intervals, determinism, independence."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from fgbg.config import load_config, scenario_params
from fgbg.datacard import measure_split
from fgbg.generate import BLOCK_SIZE, Sampler, iter_split, scenario_key
from fgbg.layout import disk_masks, disk_profiles
from fgbg.store import _dataset

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load_config(yaml.safe_load((ROOT / "config.yaml").read_text()))
SEED = CONFIG["data"]["seed"]
KEY_X90 = 4987438191634124318
Z = 3.29  # two-sided 99.9 %: the data are deterministic, so this is a check, not a flake


def params(scenario="x90", noise=None, binarize=None):
    p = scenario_params(CONFIG, scenario)
    p["noise"].update(noise or {})
    p["binarize"].update(binarize or {})
    return p


def normal_sf(z):
    return 0.5 * math.erfc(z / math.sqrt(2))


def assert_binomial(successes, n, p):
    """The observed rate lies in the normal-approximation interval of Binomial(n, p)."""
    half = Z * math.sqrt(p * (1 - p) / n)
    assert abs(successes / n - p) <= half, f"{successes}/{n} = {successes / n:.4f} vs {p:.4f}"


def card_of(p, scenario, n, split="train"):
    sampler = Sampler(p)
    batch = sampler.generate(SEED, scenario, split, 0, n)
    return measure_split(_dataset(batch, sampler.cell_masks, sampler.disk_masks)), batch


@pytest.fixture(scope="module")
def x90_20_card():
    return card_of(params("x90_20"), "x90_20", 4000)


def test_activation_rates_match_their_probabilities(x90_20_card):
    card, batch = x90_20_card
    n = card["n_images"]
    assert batch.cell_active.shape == (n, 10) and batch.disk_active.shape == (n, 2)
    assert_binomial(sum(card["cell_activation"]["count"]), n * 10, 0.5)
    for count in card["cell_activation"]["count"]:
        assert_binomial(count, n, 0.5)
    bottom_left, top_right = card["disk_activation"]["count"]
    assert_binomial(bottom_left, n, 0.9)
    assert_binomial(top_right, n, 0.2)


def test_cell_and_disk_activity_is_independent(x90_20_card):
    _, batch = x90_20_card
    both = np.logical_and(batch.disk_active[:, 0], batch.disk_active[:, 1]).sum()
    assert_binomial(both, len(batch.disk_active), 0.9 * 0.2)
    pair = np.logical_and(batch.cell_active[:, 0], batch.cell_active[:, 1]).sum()
    assert_binomial(pair, len(batch.cell_active), 0.25)


def test_pixel_on_rates_with_background_noise(x90_20_card):
    card, _ = x90_20_card
    classes = card["pixel_classes"]
    # noise only inside active disks: empty pixels are never on, cells always
    assert classes["empty"]["on_rate"] == 0.0
    assert classes["cell_only"]["on_rate"] == 1.0
    # disk pixel: 0.6 + N(0.3, 0.4^2) > 0.5  <=>  Z > -1
    disk = classes["disk_only"]
    assert_binomial(round(disk["on_rate"] * disk["pixels"]), disk["pixels"], normal_sf(-1.0))
    both = classes["cell_in_active_disk"]
    assert_binomial(round(both["on_rate"] * both["pixels"]), both["pixels"], normal_sf(-3.25))


def test_noise_everywhere_reaches_every_pixel():
    card, _ = card_of(params("x50", noise={"region": "everywhere"}), "x50", 1000)
    expected = {
        "empty": normal_sf((0.5 - 0.3) / 0.4),
        "cell_only": normal_sf((0.5 - 0.9 - 0.3) / 0.4),
        "disk_only": normal_sf((0.5 - 0.6 - 0.3) / 0.4),
    }
    for name, p in expected.items():
        cls = card["pixel_classes"][name]
        assert_binomial(round(cls["on_rate"] * cls["pixels"]), cls["pixels"], p)


def test_float32_intensities_when_binarize_is_off():
    p = params("x90", noise={"sd": 0.0}, binarize={"enabled": False})
    batch = Sampler(p).generate(SEED, "x90", "train", 0, 300)
    assert batch.images.dtype == np.float32
    # without noise spread, intensities are exact sums of the active components
    values = set(np.unique(batch.images).astype(float).round(5).tolist())
    assert values == {0.0, 0.9, 1.8}  # empty; cell or disk + noise mean; cell + disk + mean
    sampler = Sampler(p)
    card = measure_split(_dataset(batch, sampler.cell_masks, sampler.disk_masks))
    assert card["pixel_classes"]["disk_only"]["mean_intensity"] == pytest.approx(0.9, abs=1e-5)


def test_binary_images_are_uint8_zero_one():
    batch = Sampler(params()).generate(SEED, "x90", "test", 0, 200)
    assert batch.images.dtype == np.uint8 and batch.images.shape == (200, 60, 60)
    assert set(np.unique(batch.images).tolist()) == {0, 1}
    assert batch.cell_active.dtype == np.uint8 and batch.disk_active.dtype == np.uint8


def test_same_seed_same_bytes_whatever_the_chunking():
    p = params()
    n = 2 * BLOCK_SIZE + 37

    def concat(chunk_size):
        batches = [b for _, b in iter_split(p, SEED, "x90", "train", n, chunk_size)]
        return [
            np.concatenate([getattr(b, f) for b in batches])
            for f in ("images", "cell_active", "disk_active")
        ]

    reference = concat(n)
    for chunk_size in (1, 64, BLOCK_SIZE, 150):
        for a, b in zip(reference, concat(chunk_size), strict=True):
            assert a.tobytes() == b.tobytes()
    # a longer split starts with the shorter one
    longer = Sampler(p).generate(SEED, "x90", "train", 0, n + 500)
    assert longer.images[:n].tobytes() == reference[0].tobytes()


def test_streams_differ_by_split_seed_and_scenario():
    p = params()
    train = Sampler(p).generate(SEED, "x90", "train", 0, 100)
    assert (
        train.images.tobytes() == Sampler(p).generate(SEED, "x90", "train", 0, 100).images.tobytes()
    )
    others = [
        Sampler(p).generate(SEED, "x90", "test", 0, 100),
        Sampler(p).generate(SEED + 1, "x90", "train", 0, 100),
        Sampler(p).generate(SEED, "x50", "train", 0, 100),  # same geometry, other name
    ]
    for other in others:
        assert not np.array_equal(train.cell_active, other.cell_active)
        assert not np.array_equal(train.images, other.images)


def test_scenario_key_is_stable():
    # sha256-based: the same in every Python process and version (hash() is salted)
    assert scenario_key("x90") == KEY_X90
    assert scenario_key("x90") != scenario_key("x50")


def test_soft_edged_disk_profile():
    """edge 0 is the hard mask; with edge e the light is Phi((R - r) / e): half at the
    radius, 84 % one edge inside, falling along a ray; the region r <= R is unchanged."""
    hard = {"center": [10.5, 10.5], "diameter": 12}
    soft = {**hard, "edge": 2}
    assert np.array_equal(disk_profiles(21, 21, [hard])[0], disk_masks(21, 21, [hard])[0])
    profile = disk_profiles(21, 21, [soft])[0]
    ray = profile[10, 10:]  # pixel centres at r = 0, 1, ..., 10 from the centre
    assert ray[6] == pytest.approx(0.5, abs=1e-6)  # r = R
    assert ray[4] == pytest.approx(0.8413, abs=1e-4)  # r = R - e
    assert ray[8] == pytest.approx(0.1587, abs=1e-4)  # r = R + e
    assert (np.diff(ray) < 0).all() and ray[0] > 0.998
    assert np.array_equal(disk_masks(21, 21, [soft])[0], profile >= 0.5)


def test_soft_edged_disk_light_in_the_images():
    """The generator adds intensity x profile where the disk is active: a pixel's mean over
    many float images is cell + disk light x p + noise mean."""
    p = scenario_params(CONFIG, "x90")
    p["disks"][0]["edge"] = 3.0
    p["binarize"]["enabled"] = False
    p["noise"] = {"mean": 0.3, "sd": 0.4, "region": "everywhere"}
    sampler = Sampler(p)
    batch = sampler.generate(SEED, "x90", "train", 0, 2000)
    profile = disk_profiles(60, 60, p["disks"])[0]
    row = 45  # through the disk's centre
    off_cells = [c for c in range(45) if not sampler.cell_masks[:, row, c].any()]
    mean = batch.images[:, row, off_cells].mean(0)
    expected = 0.6 * profile[row, off_cells] * 0.9 + 0.3
    spread = Z * np.sqrt((0.4**2 + 0.36 * profile[row, off_cells] ** 2 * 0.09) / 2000)
    assert (np.abs(mean - expected) <= spread).all()
    assert mean.max() - mean.min() > 0.3  # the profile falls across the row
