"""The deterministic evaluation pass, on a stand-in model with known outputs."""

import numpy as np
import pytest
import torch
from eval_helpers import Constant, StandIn, clean_split, evaluate_model, stand_in

from fgbg.evaluate import cell_scores, model_outputs
from fgbg.illustrate import traverse_outputs


def test_cell_scores_are_means_over_cell_pixels():
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, :2, :2] = True
    masks[1, 2:, 2:] = True
    image = np.zeros((1, 4, 4))
    image[0, 0, 0] = 1.0
    image[0, 2:, 2:] = 0.5
    assert cell_scores(image, masks).tolist() == [[0.25, 0.5]]


def test_reconstructing_the_clean_foreground_is_perfect_everywhere():
    data = clean_split("x90_20", n=120)
    tables = evaluate_model(stand_in(data, shift=0.0), data, threshold=0.5, batch_size=50)
    rates = tables["rates"].set_index("stratum")
    for suffix in ("", "_z2_off"):
        assert (rates[f"tpr{suffix}"] == 1).all() and (rates[f"fpr{suffix}"] == 0).all()
        assert (rates[f"auroc{suffix}"] == 1).all()
    cells = tables["cells"]
    assert len(cells) == 120 * 10
    np.testing.assert_allclose(cells["score"], cells["truth"], atol=1e-6)
    latent = tables["latent"].set_index(["latent", "dim", "target", "metric"])["value"]
    assert latent["background", "block", "g(x)", "mae"] < 1e-6


def test_z2_off_decodes_without_the_background_latent():
    data = clean_split("x90", n=40)
    # z2 pushes every pixel's logit up by 5000 * mean block intensity: everything reads "on"
    out = model_outputs(stand_in(data, shift=5000.0), data["images"].values, batch_size=16)
    images = data["images"].values.astype(float)
    has_ink = images.reshape(40, -1).mean(axis=1) > 0
    assert (out["foreground"][has_ink] > 0.99).all()
    np.testing.assert_allclose(out["foreground_z2_off"], images, atol=1e-6)
    assert list(out["codes"]) == ["z1", "z2"] and out["codes"]["z2"].shape == (40, 4)


def test_baseline_without_background_branch():
    data = clean_split("x90", n=30)
    tables = evaluate_model(stand_in(data, dual=False), data, threshold=0.5)
    cells = tables["cells"]
    assert (cells["score"] == cells["score_z2_off"]).all()
    assert "background" not in set(tables["latent"]["latent"])
    assert set(tables["latent"]["latent"]) == {"z"}


def test_constant_model_has_auroc_one_half():
    data = clean_split("x90", n=60)
    rates = evaluate_model(Constant(data["cell_mask"].values), data, threshold=0.5)["rates"]
    assert (rates["auroc"] == 0.5).all() and (rates["tpr"] == 0).all()  # 0.5 is not > 0.5


def test_evaluation_is_deterministic():
    data = clean_split("x90", n=30)
    model = stand_in(data, shift=3.0)
    a = evaluate_model(model, data, 0.5)
    b = evaluate_model(model, data, 0.5)
    for name in ("cells", "rates", "latent"):
        assert a[name].equals(b[name])


def test_traversal_states_are_one_hot():
    class Echo(StandIn):
        def decode(self, latents):
            z = torch.cat([latents["z1"], latents["z2"]], dim=1)
            return {"foreground": z[:, None, None, :] * torch.ones(1, 1, 2, 1)}

    labels, outputs = traverse_outputs(
        Echo(np.ones((1, 2, 3))), {"z1": 2, "z2": 1}, amplitude=5, likelihood="gaussian"
    )
    images = outputs["foreground output"]
    assert labels == [
        "z1[0] = +5",
        "z1[0] = -5",
        "z1[1] = +5",
        "z1[1] = -5",
        "z2[0] = +5",
        "z2[0] = -5",
    ]
    assert images.shape == (6, 2, 3)
    np.testing.assert_array_equal(
        images[:, 0],
        5 * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]),
    )


@pytest.mark.parametrize("model_type", ["dual", "vae"])
def test_real_models_run_through_the_evaluation(model_type):
    models = pytest.importorskip("fgbg.models")
    data = clean_split("x90_20", n=20)
    model = models.build_model({"type": model_type}, 60, 60)
    tables = evaluate_model(model, data, 0.5)
    assert len(tables["cells"]) == 200
    assert tables["rates"]["stratum"].tolist()[:5] == [
        "outside",
        "inside_bg_off",
        "inside_bg_on",
        "inside",
        "all",
    ]
