"""fgbg.layered_checks: diagnostics of trained layered runs, and the study's table of them."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from fgbg import layered_checks
from fgbg.layered_checks import filled_hole, inference_foregrounds, moved_disk
from fgbg.models import build_model
from fgbg.study import inference_tables
from test_study import GOOD, write_run

SMALL = {"type": "layered", "fg_kernel": 3, "bg_pool": 3, "bg_grid": 4}


def _layers_drawing(model, f, b):
    """`model` with its decoder replaced by fixed layer probabilities (N, 1, H, W)."""
    model.decode = lambda latents: {"foreground": torch.logit(f), "background": torch.logit(b)}
    return model


def test_moved_disk_tells_objective_from_optimisation():
    rng = np.random.default_rng(0)
    images = (rng.random((40, 12, 12)) < 0.84).astype(np.uint8)  # a noisy "disk" everywhere
    on, region = np.ones(40, bool), np.ones((12, 12), bool)
    x = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1)
    empty = torch.full_like(x, 1e-4)
    config = {"type": "layered", "fg_kernel": 3, "bg_pool": 3, "bg_grid": 4}
    # f draws the disk flat: the background draws it as well and the pixel penalty is saved
    flat = _layers_drawing(build_model(config, 12, 12), torch.full_like(x, 0.84), empty)
    check = moved_disk(flat, images, on, region)
    assert check["f_on_disk"] > 0.8 and check["change"] < -0.05 * 0.8 * 144
    # f draws every pixel of the disk's noise: moving it costs the noise's entropy, and the
    # objective, not the optimisation, keeps the disk in f
    noise = _layers_drawing(build_model(config, 12, 12), x.clamp(1e-3, 1 - 1e-3), empty)
    assert moved_disk(noise, images, on, region)["change"] > 30


def _images(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, 12, 12)) < 0.3).astype(np.uint8)


def test_inference_ways_read_the_same_weights_as_named():
    torch.manual_seed(0)
    model = build_model({**SMALL, "fg_refine_steps": 3, "fg_readout": "means"}, 12, 12).eval()
    images = _images()
    x = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1)
    ways = inference_foregrounds(model, images, samples=4)
    with torch.no_grad():
        scored = model.foreground_layer(x)[:, 0].numpy()
        encoded = model.encode(x)
        at_encoder = model.decode({n: mu for n, (mu, _) in encoded.items()})["foreground"]
    np.testing.assert_array_equal(ways["refined"], scored)  # what a means run scores
    np.testing.assert_array_equal(ways["encoder"], torch.sigmoid(at_encoder)[:, 0].numpy())
    assert not np.allclose(ways["refined"], ways["encoder"])  # the steps move f
    # steps from the prior do not depend on the encoder's means; the other ways do
    encode = model.encode

    def shifted(x, epoch=None):
        posteriors = encode(x, epoch)
        mu, logvar = posteriors["z_fg"]
        return {**posteriors, "z_fg": (mu + 3.0, logvar)}

    model.encode = shifted
    moved = inference_foregrounds(model, images, samples=4)
    np.testing.assert_array_equal(moved["from_prior"], ways["from_prior"])
    assert not np.allclose(moved["encoder"], ways["encoder"])


def test_the_presence_way_is_a_presence_run_of_the_same_weights():
    torch.manual_seed(0)
    config = {**SMALL, "fg_refine_steps": 3, "fg_painter": "place", "fg_readout": "means"}
    model = build_model(config, 12, 12).eval()
    images, train_images = _images(), _images(n=16, seed=1)
    assert "presence" not in inference_foregrounds(model, images, samples=2)  # no rates to fit
    ways = inference_foregrounds(model, images, samples=2, train_images=train_images)
    as_trained = build_model({**config, "fg_readout": "presence"}, 12, 12)
    as_trained.load_state_dict(model.state_dict(), strict=False)  # place_rate stays 0.5
    x = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1)
    with torch.no_grad():
        unfitted = as_trained.eval().foreground_layer(x)[:, 0].numpy()
        as_trained.fit_place_rates(torch.as_tensor(train_images).unsqueeze(1))
        fitted = as_trained.foreground_layer(x)[:, 0].numpy()
    np.testing.assert_array_equal(ways["presence"], fitted)  # the rates fitted as training does
    assert not np.allclose(fitted, unfitted)
    assert not np.allclose(ways["presence"], ways["refined"])
    assert not hasattr(model, "place_rate")  # the run itself is left as it was
    # a presence run is read as it was trained: its own rates, not refitted
    assert layered_checks.presence_model(as_trained, train_images[:2]) is as_trained
    own = inference_foregrounds(as_trained, images, samples=2, train_images=train_images[:2])
    np.testing.assert_array_equal(own["presence"], fitted)
    # presence_fitted: the same run with its rates refitted (here on other training images)
    refitted = layered_checks.presence_model(as_trained, train_images[:2], refit=True)
    assert refitted is not as_trained
    assert not torch.allclose(refitted.place_rate, as_trained.place_rate)
    np.testing.assert_array_equal(
        own["presence_fitted"],
        refitted.foreground_layer(torch.as_tensor(images, dtype=torch.float32).unsqueeze(1))[:, 0]
        .detach()
        .numpy(),
    )
    only = inference_foregrounds(as_trained, images, train_images=train_images[:2],
                                 ways=("refined", "presence"))  # fmt: skip
    assert set(only) == {"refined", "presence"}
    np.testing.assert_array_equal(only["presence"], own["presence"])


@pytest.mark.parametrize(("logvar", "differs"), [(-40.0, False), (2.0, True)])
def test_expected_f_is_the_mean_over_the_posterior(logvar, differs):
    torch.manual_seed(0)
    model = build_model({**SMALL, "fg_refine_steps": 0}, 12, 12).eval()

    def refine(x, posteriors):  # a posterior as narrow or as wide as asked
        mu, _ = posteriors["z_fg"]
        return {**posteriors, "z_fg": (mu, torch.full_like(mu, logvar))}

    model.refine = refine
    ways = inference_foregrounds(model, _images(), samples=8)
    assert np.allclose(ways["expected"], ways["refined"], atol=1e-5) != differs


class _OneCell(torch.nn.Module):
    """A layered objective over one 6 x 6 cell on a background at 0.84: the cell is drawn
    at `cap` (f's value on its pixels) when the encoder sees it whole, else not at all."""

    def __init__(self, cap):
        super().__init__()
        self.model = build_model({**SMALL, "fg_place_prior": False}, 12, 12)
        self.cell = torch.zeros(12, 12, dtype=torch.bool)
        self.cell[3:9, 3:9] = True
        self.cap = cap

    def encode(self, x):
        whole = x[:, 0][:, self.cell].min(1).values.view(-1, 1)
        z_bg = torch.zeros(len(x), self.model.config["bg_latent"])
        return {"z_fg": (whole, torch.full_like(whole, -30.0)), "z_bg": (z_bg, z_bg)}

    def refine(self, x, posteriors):
        return posteriors

    def decode(self, latents):
        drawn = latents["z_fg"].clamp(0, 1).view(-1, 1, 1, 1) * self.cell * self.cap
        f = drawn.clamp(1e-4, 1 - 1e-6)
        return {"foreground": torch.logit(f), "background": torch.logit(torch.full_like(f, 0.84))}

    def objective(self, *args):
        return self.model.objective(*args)


@pytest.mark.parametrize(("cap", "objective_prefers_out"), [(0.95, False), (0.999, True)])
def test_filled_hole_tells_objective_from_optimisation(cap, objective_prefers_out):
    """35 on pixels gain log(p / 0.84) each when drawn; the hole pays log(1 - cap) and the
    cell 0.05 per drawn pixel: at 0.95 drawing pays (about +1.1 nats), at 0.999 it does not."""
    image = np.ones((12, 12), np.uint8)
    image[5, 5] = 0  # the cell's one hole
    mask = np.zeros((12, 12), bool)
    mask[3:9, 3:9] = True
    check = filled_hole(_OneCell(cap), image, mask)
    assert check["f"] < 1e-3 and check["f_filled"] > 0.9  # undrawn; drawn once filled
    assert (check["change"] > 0) == objective_prefers_out


def test_inference_tables_count_the_kept_start_per_way(tmp_path, monkeypatch):
    bad = {**GOOD, "auroc": 0.99}  # below 0.995: fails
    rows = []
    for model, loss, refined, encoder in [("m", 2.0, bad, GOOD), ("m_r1", 1.0, GOOD, bad)]:
        write_run(tmp_path, model, 0, GOOD, 0.01, best_loss=loss)
        shutil.copytree(tmp_path / f"models/x90/{model}", tmp_path / f"models/x50/{model}")
        for way, rates in [("refined", refined), ("encoder", encoder)]:
            for scenario in ("x90", "x50"):  # the same seed in two scenarios: two runs
                for stratum in ("inside_bg_on", "outside", "inside_bg_off"):
                    rows += [(scenario, model, 0, stratum, m, v, way) for m, v in rates.items()]
                rows += [(scenario, model, 0, "active_disks", m, 0.01, way)
                         for m in ("leakage", "leakage_ratio")]  # fmt: skip
    long = pd.DataFrame(
        rows, columns=["scenario", "model", "seed", "stratum", "metric", "value", "inference"]
    )
    monkeypatch.setattr(layered_checks, "inference_long", lambda results, models, split, ways: long)
    per_scenario, pooled, paired = inference_tables(tmp_path, starts=["m", "m_r1"])
    passing = pooled.set_index("model")["runs passing"]
    assert passing["m_best_of_2 refined"] == "2 of 2"  # m_r1 is kept: its lower loss
    assert passing["m_best_of_2 encoder"] == "0 of 2"
    assert passing["m refined"] == "0 of 2"
    assert pooled.set_index("model").loc["m refined", "worst auroc inside_bg_on"] == 0.99
    assert len(per_scenario) == 2 * len(pooled) == 12
    # encoder against refined, per run: m's AUROC is higher by 0.01 (GOOD's over bad's) in
    # both scenarios, m_r1's lower; the leakage is equal everywhere
    auroc = paired.set_index("target").loc["auroc `inside_bg_on` >= 0.995"]
    assert auroc["way"] == "encoder - refined" and auroc["runs"] == 4
    assert (auroc["higher"], auroc["lower"], auroc["equal"]) == (2, 2, 0)
    assert auroc["max"] == -auroc["min"] == round(GOOD["auroc"] - 0.99, 4)
    leakage = paired.set_index("target").loc["leakage `active_disks` <= 0.03"]
    assert (leakage["equal"], leakage["min"], leakage["max"]) == (4, 0, 0)
