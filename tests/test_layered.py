"""The layered VAE: shapes, the noisy-OR and additive Gaussian likelihoods against hand
computations, tiny runs that learn (binary and intensity images), and the evaluation's
read-out (f alone)."""

import math

import numpy as np
import pytest
import torch

from fgbg.logs import JobError
from fgbg.losses import gaussian_kl
from fgbg.models import build_model, resolve_config
from fgbg.models.layered.foreground import PLACE_PRIOR_MIN_VAR
from fgbg.models.layered.gaussian import Additive
from fgbg.models.layered.inference import (
    TEMPLATE_FLOOR,
    PlaceEvidence,
    drop_contained,
    em_rates,
    gate_presence,
    merge_co_occurring,
    presence_foreground,
    presences,
    refine,
    refit_templates,
    select_places,
)
from fgbg.models.layered.noisy_or import NoisyOr, noisy_or_log_likelihood
from fgbg.training import load_trained, train

LAYERED = {"type": "layered"}


def test_shapes_and_terms():
    model = build_model(LAYERED, 12, 18)
    x = torch.bernoulli(torch.full((3, 1, 12, 18), 0.3))
    posteriors = model.encode(x)
    assert list(posteriors) == ["z_fg", "z_bg"]
    config = resolve_config(LAYERED)
    assert posteriors["z_fg"][0].shape == (3, config["patch_latent"] * 2 * 3)
    assert posteriors["z_bg"][1].shape == (3, config["bg_latent"])
    out = model.decode({k: mu for k, (mu, _) in posteriors.items()})
    assert out["foreground"].shape == out["background"].shape == (3, 1, 12, 18)
    f = model.foreground_layer(x)  # the presence readout at the refined posterior means
    means = {k: mu for k, (mu, _) in refine(model, x, posteriors).items()}
    torch.testing.assert_close(f, presence_foreground(model, x, means))
    at_means = torch.sigmoid(model.decode(means)["foreground"])  # not what is scored
    assert not torch.allclose(f, at_means)
    assert f.shape == (3, 1, 12, 18) and (f >= 0).all() and (f <= 1).all()
    terms = model.loss_terms(x, torch.Generator().manual_seed(0), epoch=1)
    assert set(terms) == {"loss", "ll", "kl_fg", "kl_bg", "fg_pixels"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in terms.values())


def _logit(p):
    return torch.log(p / (1 - p))


def test_background_upsampling_is_a_cubic_bspline():
    """The mask is scipy's cubic B-spline over the coarse nodes as control points (no
    prefilter: a smoothing spline, not an interpolating one), the border nodes repeated."""
    from scipy.ndimage import map_coordinates

    model = build_model({"type": "layered", "bg_grid": 10}, 60, 48)
    coarse = torch.randn(3, 1, 10, 10, dtype=torch.float64)
    rows = (np.arange(60) + 0.5) * 10 / 60 - 0.5
    cols = (np.arange(48) + 0.5) * 10 / 48 - 0.5
    grid = np.stack(np.meshgrid(rows, cols, indexing="ij"))
    expected = [
        map_coordinates(c[0].numpy(), grid, order=3, prefilter=False, mode="nearest")
        for c in coarse
    ]
    got = model.background.upsample(coarse.float())[:, 0]
    torch.testing.assert_close(got, torch.tensor(np.stack(expected)).float())
    assert (model.background.upsample_rows >= 0).all()  # never negative, unlike bicubic's
    assert not any("upsample" in key for key in model.state_dict())  # not saved with weights


def test_noisy_or_likelihood_by_hand():
    f = torch.tensor([0.2, 0.9, 0.0001, 0.5])
    b = torch.tensor([0.5, 0.3, 0.0001, 0.84])
    x = torch.tensor([1.0, 0.0, 0.0, 1.0])
    got = noisy_or_log_likelihood(
        _logit(f).view(1, 1, 2, 2), _logit(b).view(1, 1, 2, 2), x.view(1, 1, 2, 2)
    )
    p = [1 - 0.8 * 0.5, 1 - 0.1 * 0.7, 1 - 0.9999 * 0.9999, 1 - 0.5 * 0.16]
    want = math.log(p[0]) + math.log(1 - p[1]) + math.log(1 - p[2]) + math.log(p[3])
    assert abs(got.item() - want) < 1e-4
    # an image the layers explain badly scores lower: the likelihood can fail
    flipped = noisy_or_log_likelihood(
        _logit(f).view(1, 1, 2, 2), _logit(b).view(1, 1, 2, 2), 1 - x.view(1, 1, 2, 2)
    )
    assert flipped.item() < want - 5


def _band_and_cells(n=256, seed=0):
    """12 x 12 images: two 3 x 3 cells (each on w.p. 0.5) and a noisy 6 x 12 band (p 0.7)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 12, 12), np.uint8)
    band = rng.random(n) < 0.7
    x[:, 6:, :] = (rng.random((n, 6, 12)) < 0.8) & band[:, None, None]
    for r, c in [(1, 1), (7, 7)]:
        x[rng.random(n) < 0.5, r : r + 3, c : c + 3] = 1
    return x


def _band_and_cells_intensity(n=512, seed=0):
    """The same layout as intensities: cells add 0.9, the band (on w.p. 0.7) 0.6, and every
    pixel gets N(0.3, 0.3^2) noise. Returns (images, cell states (n, 2), band states)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 12, 12), np.float32)
    band = rng.random(n) < 0.7
    x[:, 6:, :] += 0.6 * band[:, None, None]
    cells = rng.random((n, 2)) < 0.5
    for k, (r, c) in enumerate([(1, 1), (7, 7)]):
        x[cells[:, k], r : r + 3, c : c + 3] += 0.9
    return x + rng.normal(0.3, 0.3, x.shape).astype(np.float32), cells, band


def test_additive_gaussian_likelihood_by_hand():
    composition = Additive()
    with torch.no_grad():  # c 0.8, a 0.5, offset 0.2, sd 0.25
        composition.raw.copy_(torch.tensor([math.log(math.expm1(0.8)), math.log(math.expm1(0.5)),
                                            0.2, math.log(0.25)]) / composition.scales)  # fmt: skip
    f, b = torch.tensor([0.2, 0.9, 0.0, 1.0]), torch.tensor([0.5, 0.0, 1.0, 0.3])
    x = torch.tensor([0.7, 1.1, 0.6, 1.0])
    got = composition.log_likelihood(
        _logit(f.clamp(1e-6, 1 - 1e-6)).view(1, 1, 2, 2), _logit(b.clamp(1e-6, 1 - 1e-6)).view(
            1, 1, 2, 2), x.view(1, 1, 2, 2))  # fmt: skip
    mean = 0.2 + 0.8 * f + 0.5 * b
    want = sum(-0.5 * ((xi - m) / 0.25) ** 2 - math.log(0.25 * math.sqrt(2 * math.pi))
               for xi, m in zip(x.tolist(), mean.tolist(), strict=True))  # fmt: skip
    assert abs(got.item() - want) < 1e-3
    assert composition.log_likelihood(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2),
                                      x.view(1, 1, 2, 2) + 2).item() < want - 50  # fmt: skip


def test_the_spread_is_the_variance_of_f_over_presences_drawn_at_the_gates():
    """Var(f) in closed form (`Foreground.paint_spread`) against presences drawn 0 or 1 at the
    gates; the expected log-likelihood subtracts u^2 Var(f) / (2 sd^2) per pixel, so a half-
    open gate costs what a full or a closed one does not."""
    torch.manual_seed(0)
    config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3, "likelihood": "gaussian"}
    model = build_model(config, 12, 12)
    with torch.no_grad():
        model.foreground.templates.normal_(0.0, 0.2)  # t in about (0.1, 0.9), overlapping
        gates = torch.randn(1, 1, 4, 4)
        f_logits, spread = model.foreground.paint_spread(gates)
        torch.testing.assert_close(f_logits, model.foreground.paint(gates))
        spread = spread[0, 0]
        drawn = torch.rand(20000, 1, 4, 4) < torch.sigmoid(gates)
        f = torch.sigmoid(model.foreground.paint(torch.where(drawn, 40.0, -40.0)))[:, 0]
        assert spread.max() > 0.1  # not a trivial case
        torch.testing.assert_close(spread, f.var(0), atol=0.006, rtol=0)
        for shut in (30.0, -30.0):  # every gate open, every gate closed: no spread
            assert model.foreground.paint_spread(torch.full((1, 1, 4, 4), shut))[1].max() < 1e-6
        composition = model.composition
        u, _v, _offset, sd = composition.values()
        f_logits, b_logits = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
        x, spread = torch.full((1, 1, 2, 2), 0.5), torch.full((1, 1, 2, 2), 0.25)
        plain = composition.log_likelihood(f_logits, b_logits, x)
        expected = composition.log_likelihood(f_logits, b_logits, x, spread)
        torch.testing.assert_close((plain - expected)[0], 4 * 0.5 * (u / sd) ** 2 * 0.25)


def test_on_intensities_a_template_is_a_shape_with_its_brightest_pixel_at_one():
    """Only u t_p is identified on intensities: each template is scaled to a maximum of 1.
    On binary images t_p is an on-probability and is left as it is."""
    torch.manual_seed(0)
    shapes = {}
    for likelihood in ("gaussian", "bernoulli"):
        config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3, "likelihood": likelihood}
        model = build_model(config, 12, 12)
        with torch.no_grad():
            model.foreground.templates.normal_(-0.3, 0.05)  # every pixel's t well below 1
            log_not_t = model.foreground.fold(torch.zeros(1, 1, 1))[0]  # presence 1
        shapes[likelihood] = -torch.expm1(log_not_t)[0]  # t_p per window pixel and place
    torch.testing.assert_close(shapes["gaussian"].amax(0), torch.ones(16), atol=1e-5, rtol=0)
    assert shapes["bernoulli"].amax(0).max() < 0.5


def test_a_tiny_intensity_run_separates_a_cell_from_the_band(tmp_path):
    """Intensity images: the model's likelihood is the data's (additive Gaussian); it learns
    the noise's mean and level, and its scored foreground calls the cells, the one inside
    the band included, and leaves the band out."""
    torch.set_num_threads(1)
    config = {**LAYERED, "fg_kernel": 3, "bg_pool": 3, "bg_grid": 4, "fg_refine_steps": 10}
    training = {"epochs": 20, "batch_size": 32, "learning_rate": 3e-3, "device": "cpu"}
    images = _band_and_cells_intensity()[0]
    train(images, config, training, seed=0, out_dir=tmp_path, val_images=images[:64])
    model, resolved = load_trained(tmp_path / "model.pt")
    assert resolved["likelihood"] == "gaussian" and isinstance(model.composition, Additive)
    _c, _a, offset, sd = (v.item() for v in model.composition.values())
    assert abs(offset - 0.3) < 0.05 and abs(sd - 0.3) < 0.03
    x, cells, band = _band_and_cells_intensity(400, seed=1)
    with torch.no_grad():
        f = model.foreground_layer(torch.as_tensor(x).unsqueeze(1))[:, 0].numpy()
    scores = np.stack([f[:, 1:4, 1:4].mean((1, 2)), f[:, 7:10, 7:10].mean((1, 2))], 1)
    called = scores > 0.5
    assert (called == cells).mean() > 0.97 and (called[:, 1] == cells[:, 1]).mean() > 0.97
    band_only = np.zeros((12, 12), bool)
    band_only[6:] = True
    band_only[7:10, 7:10] = False
    assert f[band][:, band_only].mean() < 0.03  # the band stays in the background


def test_a_tiny_run_learns_and_loads(tmp_path):
    torch.set_num_threads(1)
    config = {**LAYERED, "fg_kernel": 3, "bg_pool": 3, "bg_grid": 4}
    training = {"epochs": 6, "batch_size": 32, "learning_rate": 3e-3, "device": "cpu"}
    images = _band_and_cells()
    history = train(images, config, training, seed=0, out_dir=tmp_path, val_images=images[:64])
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    model, resolved = load_trained(tmp_path / "model.pt")
    assert resolved["type"] == "layered"
    x = torch.as_tensor(images[:4], dtype=torch.float32).unsqueeze(1)
    f, b = model.layers(x)
    torch.testing.assert_close(model.foreground_layer(x), f)
    assert f.shape == b.shape == (4, 1, 12, 12)


def test_a_blind_foreground_encoder_sees_the_opening_only():
    model = build_model({**LAYERED, "fg_kernel": 3, "bg_pool": 3, "bg_grid": 4,
                         "fg_blind_epochs": 2}, 12, 12)  # fmt: skip
    default = build_model(LAYERED, 12, 12)
    assert (default.foreground.encoder[0].weight[:, 0] == 0).all()
    assert default.warmup_epochs() == default.config["fg_blind_epochs"] == 5
    assert (model.foreground.encoder[0].weight[:, 0] == 0).all() and model.warmup_epochs() == 2
    unblind = build_model({**LAYERED, "fg_blind_epochs": 0}, 12, 12)
    assert (unblind.foreground.encoder[0].weight[:, 0] != 0).any()
    assert unblind.warmup_epochs() == 0
    with torch.no_grad():  # as if trained: the image's weights are no longer 0
        model.foreground.encoder[0].weight[:, 0].normal_()
    empty = torch.zeros(1, 1, 12, 12)
    speckled = empty.clone()
    speckled[0, 0, ::2, ::2] = 1  # no hole-free 3 x 3 window: its opening is 0, as is empty's
    for epoch, same in [(1, True), (2, True), (3, False), (None, False)]:
        mu_empty = model.encode(empty, epoch)["z_fg"][0]
        mu_speckled = model.encode(speckled, epoch)["z_fg"][0]
        assert torch.equal(mu_empty, mu_speckled) == same, epoch


def test_place_prior_narrows_where_the_posteriors_agree():
    model = build_model({**LAYERED, "fg_kernel": 3, "bg_pool": 3, "bg_grid": 4}, 6, 6)
    fg = model.foreground
    n = resolve_config(LAYERED)["patch_latent"] * 4
    assert fg.prior_var.shape == (n,) and "foreground.prior_var" in model.state_dict()
    # at the start the prior is N(0, I): the standard KL
    mu, logvar = torch.randn(3, n), torch.randn(3, n) * 0.1
    torch.testing.assert_close(fg.kl(mu, logvar, False), gaussian_kl(mu, logvar))
    # the model learns the prior in training after the blind epochs, not in them
    x = torch.bernoulli(torch.full((2, 1, 6, 6), 0.3))
    model.train().loss_terms(x, torch.Generator().manual_seed(0), epoch=model.warmup_epochs())
    assert (fg.prior_var == 1).all() and (fg.prior_mean == 0).all()
    model.loss_terms(x, torch.Generator().manual_seed(0), epoch=model.warmup_epochs() + 1)
    assert not (fg.prior_mean == 0).all()
    fg.prior_mean.zero_(), fg.prior_var.fill_(1.0)
    # the prior follows the posteriors' moments place by place: dimension 0 is the same in
    # every image (it narrows to the floor), dimension 1 is +-2 (it stays wide)
    sign = torch.tensor([[1.0], [-1.0]])
    for _ in range(2000):
        mu = torch.zeros(2, n)
        mu[:, 0], mu[:, 1] = 0.5, 2 * sign[:, 0]
        fg.kl(mu, torch.full((2, n), -10.0), True)
    assert fg.prior_mean[0].item() == pytest.approx(0.5, abs=1e-3)
    assert fg.prior_var[0].item() == pytest.approx(PLACE_PRIOR_MIN_VAR)
    assert fg.prior_var[1].item() == pytest.approx(4.0, rel=1e-2)
    # the same move away from the prior's mean costs far more at the narrow place
    at_prior = fg.prior_mean.expand(1, n).clone()
    logvar = fg.prior_var.log().expand(1, n).clone()
    assert fg.kl(at_prior, logvar, False).item() == pytest.approx(0.0, abs=1e-4)
    narrow, wide = at_prior.clone(), at_prior.clone()
    narrow[0, 0] += 1.0
    wide[0, 1] += 1.0
    assert fg.kl(narrow, logvar, False).item() == pytest.approx(50.0, rel=1e-3)
    assert fg.kl(wide, logvar, False).item() == pytest.approx(0.125, rel=1e-2)


def test_place_painter_paints_each_template_at_its_own_place():
    model = build_model({**LAYERED, "bg_grid": 4}, 24, 24)
    z = {"z_fg": torch.zeros(1, 2 * 16), "z_bg": torch.zeros(1, 4)}
    with torch.no_grad():
        model.foreground.decoder[-1].weight.zero_()
        model.foreground.decoder[-1].bias.fill_(30.0)  # every gate open
        model.foreground.templates.fill_(-3.0)  # logits -30 (TEMPLATE_SCALE 10)
        model.foreground.templates[0, :, 5] = 3.0  # patch (1, 1): pixels 6-11, window 3-14
        model.foreground.templates[0, :, 15] = 0.0  # patch (3, 3): half on, window clipped
    f = torch.sigmoid(model.decode(z)["foreground"])[0, 0]
    painted = f > 0.99
    assert painted[3:15, 3:15].all() and painted.sum() == 12 * 12
    # the half-on template of patch (3, 3) (pixels 18-23): 0.5 over its window, which
    # reaches back half a cell to 15 and is clipped at the image's edge
    torch.testing.assert_close(f[15:, 15:], torch.full((9, 9), 0.5), atol=1e-4, rtol=0)
    assert f[:3, :].max() < 1e-6 and f[15:18, :15].max() < 1e-6
    with torch.no_grad():
        model.foreground.decoder[-1].bias.fill_(-30.0)  # gates closed: nothing at all
    assert torch.sigmoid(model.decode(z)["foreground"]).max() < 1e-6


def _mean_elbo_loss(model, x, posteriors):
    """The negative ELBO at the posterior means (KL included), averaged over the images."""
    out = model.decode({name: mu for name, (mu, _lv) in posteriors.items()}, spread=True)
    return model.objective(x, out, posteriors)["loss"].item()


def test_refinement_lowers_each_images_loss_and_leaves_the_weights():
    torch.manual_seed(0)
    config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3}
    model = build_model({**config, "fg_refine_steps": 40}, 12, 12)  # in training mode:
    x = torch.as_tensor(_band_and_cells()[:16], dtype=torch.float32).unsqueeze(1)
    weights = {k: v.clone() for k, v in model.state_dict().items()}  # the prior's too
    with torch.no_grad():  # as in the evaluation: the steps take their own gradients
        encoded = model.encode(x)
        refined = refine(model, x, encoded)
        again = refine(model, x, encoded)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, weights[key], rtol=0, atol=0)
    assert all(p.grad is None for p in model.parameters())
    model.eval()  # the loss below must not move the prior either
    before = [_mean_elbo_loss(model, x[i : i + 1], _one(encoded, i)) for i in range(16)]
    after = [_mean_elbo_loss(model, x[i : i + 1], _one(refined, i)) for i in range(16)]
    assert all(a < b for a, b in zip(after, before, strict=True))
    for name in refined:  # deterministic: a fixed noise seed
        torch.testing.assert_close(refined[name][0], again[name][0], rtol=0, atol=0)
    # with 0 steps the layers are the encoder's; with steps they differ
    plain = build_model({**config, "fg_refine_steps": 0}, 12, 12).eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(refine(plain, x, encoded)["z_fg"][0], encoded["z_fg"][0])
        assert not torch.allclose(model.foreground_layer(x), plain.foreground_layer(x))


def _one(posteriors, i):
    return {name: (mu[i : i + 1], lv[i : i + 1]) for name, (mu, lv) in posteriors.items()}


def test_a_model_file_of_another_version_is_refused_naming_the_version(tmp_path):
    """A model.pt of another layout (0.2.0 and earlier wrote no format) is never read as a
    model it was not trained as: one line naming the version that wrote it."""
    model = build_model({**LAYERED, "bg_grid": 4}, 12, 12)
    state = {"model_config": resolve_config({**LAYERED, "bg_grid": 4}), "height": 12,
             "width": 12, "state_dict": model.state_dict()}  # fmt: skip
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(JobError, match=r"written by fgbg 0\.2\.0 or earlier.*--forcerun"):
        load_trained(tmp_path / "old.pt")
    torch.save({**state, "format": 1, "fgbg_version": "0.1.5"}, tmp_path / "other.pt")
    with pytest.raises(JobError, match=r"written by fgbg 0\.1\.5"):
        load_trained(tmp_path / "other.pt")
    # format 2's layered weights were trained for a bilinear background mask
    torch.save({**state, "format": 2, "fgbg_version": "0.3.0"}, tmp_path / "bilinear.pt")
    with pytest.raises(JobError, match=r"written by fgbg 0\.3\.0 \(model file format 2\), which"):
        load_trained(tmp_path / "bilinear.pt")
    # format 3's templates and rates were fitted for the readout before the template refit
    torch.save({**state, "format": 3, "fgbg_version": "0.3.0"}, tmp_path / "trained.pt")
    with pytest.raises(JobError, match=r"\(model file format 3\), which"):
        load_trained(tmp_path / "trained.pt")
    # format 4 stored u, the intensity composition's cell brightness, at another scale
    torch.save({**state, "format": 4, "fgbg_version": "0.3.0"}, tmp_path / "u.pt")
    with pytest.raises(JobError, match=r"\(model file format 4\), which"):
        load_trained(tmp_path / "u.pt")


@pytest.mark.parametrize("written_format", [2, 3, 4])
def test_a_thesis_model_file_of_an_older_format_still_reads(tmp_path, written_format):
    config = resolve_config({"type": "dual"})
    model = build_model(config, 12, 12)
    state = {"model_config": config, "height": 12, "width": 12, "format": written_format,
             "fgbg_version": "0.3.0", "state_dict": model.state_dict()}  # fmt: skip
    torch.save(state, tmp_path / "dual.pt")
    loaded, _ = load_trained(tmp_path / "dual.pt")
    for name, weights in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], weights)


def _forced_gate_score(model, x, means, place, gate_logit):
    """log p(x | f, b) per image with place `place`'s gate logit set to `gate_logit`, the
    other gates as decoded: the likelihood's terms that the gate moves."""
    gates = model.foreground.gate_logits(means["z_fg"]).clone()
    gates.view(len(x), -1)[:, place] = gate_logit
    f_logits = model.foreground.paint(gates)
    b_logits = model.background.logits(means["z_bg"])
    return model.composition.log_likelihood(f_logits, b_logits, x)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_place_evidence_is_the_objectives_difference_with_the_template_on_and_off(likelihood):
    torch.manual_seed(0)
    config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3, "likelihood": likelihood}
    model = build_model(config, 12, 12).eval()
    images = _band_and_cells() if likelihood == "bernoulli" else _band_and_cells_intensity()[0]
    with torch.no_grad():
        model.foreground.templates.normal_(0, 0.3)  # templates that differ pixel by pixel
        x = torch.as_tensor(images[:4], dtype=torch.float32).unsqueeze(1)
        means = {name: mu for name, (mu, _lv) in model.encode(x).items()}
        evidence = PlaceEvidence(model, x, means)(gate_presence(model, means))
        gates = torch.sigmoid(model.foreground.gate_logits(means["z_fg"]).flatten(1))
        assert evidence.shape == gates.shape == (4, 16)
        for place in (0, 5, 15):  # a corner (its window clipped), the middle, the far corner
            expected = _forced_gate_score(model, x, means, place, 40.0) - _forced_gate_score(
                model, x, means, place, -40.0
            )
            torch.testing.assert_close(evidence[:, place], expected, rtol=1e-4, atol=2e-3)


def test_presence_readout_is_a_fixed_point_that_follows_the_rate():
    config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3}
    model = build_model(config, 12, 12).eval()
    x = torch.as_tensor(_band_and_cells()[:8], dtype=torch.float32).unsqueeze(1)
    # place (1, 1), pixels 3-5 x 3-5, lies inside the windows of (0..2, 0..2): with every
    # template 1 its f is 1 - prod (1 - P_p) over those nine places
    neighbours = [r * 4 + c for r in range(3) for c in range(3)]
    f = {}
    with torch.no_grad():
        model.foreground.templates.fill_(3.0)  # every template on over its whole window
        means = {name: mu for name, (mu, _lv) in model.encode(x).items()}
        for rate in (1e-4, 0.5):  # a place seldom used, and an even prior
            model.foreground.place_rate.fill_(rate)
            f[rate] = presence_foreground(model, x, means)[:, 0]
            log_p, evidence = presences(model, x, means, model.foreground.place_rate)
            presence = log_p.exp()[:, 0]
            # each P_p is its own update against the other places' P: a fixed point
            expected = torch.sigmoid(math.log(rate / (1 - rate)) + evidence)
            torch.testing.assert_close(presence, expected, atol=1e-3, rtol=0)
            torch.testing.assert_close(
                f[rate][:, 4, 4], 1 - (1 - presence[:, neighbours]).prod(1), atol=1e-5, rtol=1e-4
            )
    assert f[1e-4].sum() < f[0.5].sum() and (f[1e-4] < f[0.5] - 0.1).any()


def test_two_places_that_both_draw_one_cell_call_it():
    # places (1, 1) and (1, 2) both learned the 3 x 2 cell at rows 3-5, columns 5-6 (the
    # overlap of their windows), and both gates are open on it; the other templates are off
    config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3}
    model = build_model(config, 12, 12).eval()
    x = torch.zeros(4, 1, 12, 12)
    x[:, :, 3:6, 5:7] = 1
    with torch.no_grad():
        templates = model.foreground.templates.view(1, 5, 5, 16).fill_(-3.0)
        templates[:, 1:4, 3:5, 5] = 3.0  # place (1, 1): window rows 2-6, columns 2-6
        templates[:, 1:4, 0:2, 6] = 3.0  # place (1, 2): window rows 2-6, columns 5-9
        model.foreground.decoder[-1].bias.fill_(20.0)  # every gate open
        model.foreground.place_rate.fill_(0.02)
        means = {name: mu for name, (mu, _lv) in model.encode(x).items()}
        f = presence_foreground(model, x, means)[:, 0]
        evidence = PlaceEvidence(model, x, means)(gate_presence(model, means))
        against_gates = torch.sigmoid(math.log(0.02 / 0.98) + evidence)
    assert (f[:, 3:6, 5:7] > 0.99).all()
    # weighed against the gates, each explains the cell for the other: neither calls it
    assert (against_gates[:, [5, 6]] < 0.05).all()


def test_em_rates_recover_the_presence_rates_that_the_evidence_is_drawn_from():
    # presence s ~ Bernoulli(r) per place; the evidence is the exact log-likelihood ratio of
    # an observation y ~ N(2 s - 1, 1.5^2): ambiguous, so averaging sigmoid(e) (the posterior
    # under an even prior) is pulled towards 0.5 and EM is not
    generator = torch.Generator().manual_seed(0)
    true = torch.tensor([0.05, 0.3, 0.5, 0.9])
    s = (torch.rand(20000, 4, generator=generator) < true).float()
    y = 2 * s - 1 + 1.5 * torch.randn(20000, 4, generator=generator)
    evidence = 2 * y / 1.5**2
    rate = em_rates(evidence)
    torch.testing.assert_close(rate, true, atol=0.02, rtol=0)
    naive = torch.sigmoid(evidence).mean(0)
    assert (naive - true).abs().max() > 0.1


def test_noisy_or_fired_is_the_posterior_that_the_cause_turned_the_pixel_on():
    # a cause fires w.p. `drawn`, the rest w.p. 1 - quiet; the pixel is on if either does
    generator = torch.Generator().manual_seed(0)
    drawn, quiet = torch.tensor([0.3, 0.9, 0.05]), torch.tensor([0.2, 0.5, 0.99])
    cause = torch.rand(200000, 3, generator=generator) < drawn
    x = cause | (torch.rand(200000, 3, generator=generator) > quiet)
    simulated = (cause & x).sum(0) / x.sum(0)
    fired = NoisyOr().fired(torch.ones(3), drawn, quiet)
    torch.testing.assert_close(fired, simulated.float(), atol=0.01, rtol=0)
    assert (NoisyOr().fired(torch.zeros(3), drawn, quiet) == 0).all()


def _one_cell_under_a_dense_background(n=200):
    """A 12 x 12 model with 3 x 3 places whose background is 0.8 everywhere, its readout at
    rate 0.5 for place (1, 1) and 1e-4 elsewhere, and images in which a 3 x 3 cell at rows
    and columns 3-5 is always on and every other pixel is on w.p. 0.8 (the background)."""
    config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3}
    model = build_model(config, 12, 12).eval()
    model.background.logits = lambda z: torch.full((len(z), 1, 12, 12), math.log(0.8 / 0.2))
    x = torch.bernoulli(torch.full((n, 1, 12, 12), 0.8), generator=torch.Generator().manual_seed(0))
    x[:, :, 3:6, 3:6] = 1
    rate = torch.full((16,), 1e-4)
    rate[5] = 0.5
    with torch.no_grad():
        means = {name: mu for name, (mu, _lv) in model.encode(x).items()}
    return model, [(x, means, PlaceEvidence(model, x, means))], rate


def test_a_template_refits_to_the_whole_cell_and_away_from_the_background():
    # place (1, 1)'s window is rows and columns 2-6; its template starts at 0.6 on the cell
    # and on the ring around it, as a template trimmed by the pixel penalty might be
    model, batches, rate = _one_cell_under_a_dense_background()
    with torch.no_grad():
        templates = model.foreground.templates.view(1, 5, 5, 16).fill_(-3.0)
        templates[..., 5] = torch.logit(torch.tensor(0.6)) / 10
        for _ in range(60):
            refit_templates(model, batches, rate)
    t = torch.sigmoid(10 * model.foreground.templates).view(5, 5, 16)[..., 5]
    assert (t[1:4, 1:4] > 0.99).all()  # the cell's pixels, always on
    ring = torch.ones(5, 5, dtype=torch.bool)
    ring[1:4, 1:4] = False
    # on w.p. 0.8 whether or not the cell is: down from 0.6 everywhere (slowly near 0)
    assert t[ring].max() < 0.4 and t[ring].mean() < 0.15, t[ring]


def test_a_template_update_returns_the_evidence_of_its_own_e_step():
    # one pass of the presences per EM round: the rates are fitted on the evidence at the
    # presences (and templates) that the template update read, not after it
    model, batches, rate = _one_cell_under_a_dense_background(n=50)
    ((x, means, evidence),) = batches
    with torch.no_grad():
        before = presences(model, x, means, rate, evidence)[1]
        returned = refit_templates(model, batches, rate)
        after = presences(model, x, means, rate, evidence)[1]
    assert torch.equal(returned, before)
    assert not torch.allclose(after, before)  # the update moved the templates


def test_a_place_whose_shape_lies_within_a_neighbours_is_dropped():
    config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3}
    model = build_model(config, 12, 12).eval()
    with torch.no_grad():
        templates = model.foreground.templates.view(1, 5, 5, 16).fill_(-3.0)
        templates[:, 1:4, 1:4, 5] = 3.0  # place (1, 1): the cell at rows 3-5, columns 3-5
        templates[:, 1:4, 0:1, 6] = 3.0  # place (1, 2): column 5 of that cell, within it
        templates[:, 2:4, 2:4, 10] = 3.0  # place (2, 2): rows 7-8, columns 7-8, apart
        templates[:, 1:3, 3:5, 14] = 3.0  # places (3, 2) and (3, 3): one shape, rows 9-10,
        templates[:, 1:3, 0:2, 15] = 3.0  # columns 8-9
        start = model.foreground.templates.clone()
        used = torch.ones(16, dtype=torch.bool)
        assert drop_contained(model, used) == [6, 15]
        after = model.foreground.templates
        assert (torch.sigmoid(10 * after[0, :, [6, 15]]) <= TEMPLATE_FLOOR * 1.001).all()
        kept = [p for p in range(16) if p not in (6, 15)]
        assert torch.equal(after[0, :, kept], start[0, :, kept])
        # a neighbour that is not used does not drop a place
        model.foreground.templates.copy_(start)
        used[5] = False
        assert drop_contained(model, used) == [15]


def test_on_intensities_the_readout_refits_a_template_and_the_levels():
    # a 3 x 3 cell (rows and columns 3-5) adds 0.5 w.p. 0.5; a band (rows 6-11, the
    # background, b = 1) adds 0.6; offset 0.3, noise sd 0.3. Place (1, 1)'s template
    # starts at 0.6 on the cell and 0.3 on the ring around it (shapes: 1 and 0.5), the
    # levels at their training start (u 0.1, v 1, offset 0, sd 1); the other places off
    torch.manual_seed(0)
    config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3, "likelihood": "gaussian"}
    model = build_model(config, 12, 12).eval()
    band = torch.full((1, 1, 12, 12), -10.0)
    band[..., 6:, :] = 10.0
    model.background.logits = lambda z: band.expand(len(z), -1, -1, -1)
    generator = torch.Generator().manual_seed(0)
    cell = torch.rand(400, generator=generator) < 0.5
    x = 0.3 + 0.6 * (band > 0).float().repeat(400, 1, 1, 1)
    x[cell, :, 3:6, 3:6] += 0.5
    x += 0.3 * torch.randn(x.shape, generator=generator)
    rate = torch.zeros(16)
    rate[5] = 0.5
    with torch.no_grad():
        templates = model.foreground.templates.view(1, 5, 5, 16).fill_(-3.0)
        templates[..., 5] = torch.logit(torch.tensor(0.3)) / 10
        templates[:, 1:4, 1:4, 5] = torch.logit(torch.tensor(0.6)) / 10
        means = {name: mu for name, (mu, _lv) in model.encode(x).items()}
        batches = [(x, means, PlaceEvidence(model, x, means))]
        for _ in range(10):
            rate = em_rates(refit_templates(model, batches, rate), off=rate == 0)
    u, v, offset, sd = (value.item() for value in model.composition.values())
    t = model.foreground.shapes()[:, 5].view(5, 5)
    # the cell's light u t = 0.5 on its plateau, which sits below 1 by the headroom
    assert abs(u * t[1:4, 1:4].mean() - 0.5) < 0.02 and t[1:4, 1:4].mean() < 0.95, (u, t)
    assert abs(v - 0.6) < 0.01, v
    assert abs(offset - 0.3) < 0.01 and abs(sd - 0.3) < 0.005, (offset, sd)
    assert abs(rate[5] - 0.5) < 0.03 and (rate[torch.arange(16) != 5] == 0).all()
    # what the scored output paints: the whole cell, each of its pixels covered
    coverage = model.foreground.log_coverage().exp()[0, :, 5].view(5, 5)
    assert coverage[1:4, 1:4].mean() > 0.95 and coverage.max() <= 1, coverage
    ring = torch.ones(5, 5, dtype=torch.bool)
    ring[1:4, 1:4] = False
    assert t[ring].max() < 1e-3, t  # no pixel there stands 3 standard errors above 0


def test_the_levels_stay_finite_where_the_background_cannot_be_told_from_the_offset():
    # a background that is the same everywhere (no disk) is collinear with the offset:
    # v keeps its value, the offset takes the images' mean, sd their spread
    composition = Additive()
    generator = torch.Generator().manual_seed(0)
    x = 0.3 + 0.2 * torch.randn(20, 1, 6, 6, generator=generator)
    f, b = torch.zeros_like(x), torch.full_like(x, 0.5)
    v_before = composition.values()[1].item()
    composition.fit_levels(*composition.level_moments(x, f, torch.zeros_like(x), b))
    _u, v, offset, sd = (value.item() for value in composition.values())
    assert math.isfinite(offset) and math.isfinite(sd)
    assert abs(v - v_before) < 1e-3 and abs(offset + 0.5 * v - x.mean().item()) < 1e-3
    assert abs(sd - x.std().item()) < 0.01


def test_a_place_whose_cells_are_worth_too_little_is_turned_off():
    # evidence (exact log-likelihood ratios) for three places: cells at rate 0.3 seen
    # through N(+-1, 1) (kept), no cell ever (dropped: EM still gives it a rate), and cells
    # at rate 0.3 seen through N(+-0.15, 1) (each one worth too little: dropped)
    generator = torch.Generator().manual_seed(0)
    s = (torch.rand(4000, 3, generator=generator) < torch.tensor([0.3, 0.0, 0.3])).float()
    signal = torch.tensor([1.0, 1.0, 0.15])
    y = (2 * s - 1) * signal + torch.randn(4000, 3, generator=generator)
    evidence = 2 * signal * y
    rate = em_rates(evidence)
    assert rate[1] > 0  # a place without cells is not at 0 by EM alone
    kept = select_places(evidence, rate)
    assert kept.tolist() == [True, False, False]
    rate = em_rates(evidence, off=~kept)
    assert rate[0] > 0.25 and (rate[1:] == 0).all()
    # a place turned off has presence 0 in the readout, one at a low rate does not
    model, batches, rate = _one_cell_under_a_dense_background(n=20)
    ((x, means, place_evidence),) = batches
    rate[6] = 0.0
    with torch.no_grad():
        presence = presences(model, x, means, rate, place_evidence)[0].exp()[:, 0]
    assert (presence[:, 6] == 0).all() and (presence[:, 7] > 0).all()


def test_two_places_present_together_are_merged_and_independent_neighbours_are_not():
    # intensities: places (1, 1) and (1, 2) draw the left and right halves of one cell at
    # rows 3-5, columns 4-6 (w.p. 0.5); place (2, 2) draws another cell at rows 6-8,
    # columns 6-8 (w.p. 0.5, independently): neighbours of both, present on its own
    config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3, "likelihood": "gaussian"}
    model = build_model(config, 12, 12).eval()
    model.background.logits = lambda z: torch.full((len(z), 1, 12, 12), -10.0)
    generator = torch.Generator().manual_seed(0)
    on = torch.rand(300, 2, generator=generator) < 0.5
    x = torch.zeros(300, 1, 12, 12)
    x[on[:, 0], :, 3:6, 4:7] = 1.0
    x[on[:, 1], :, 6:9, 6:9] = 1.0
    x += 0.3 * torch.randn(x.shape, generator=generator)
    with torch.no_grad():
        levels = torch.tensor([math.log(math.expm1(1.0)), 0.0, 0.0, math.log(0.3)])
        model.composition.raw.copy_(levels / model.composition.scales)
        templates = model.foreground.templates.view(1, 5, 5, 16).fill_(-3.0)
        templates[:, 1:4, 2:4, 5] = 3.0  # (1, 1), window columns 2-6: cell columns 4-5
        templates[:, 1:4, 0:1, 6] = 3.0  # (1, 2), window columns 5-9: cell column 6
        templates[:, 1:4, 1:4, 10] = 3.0  # (2, 2), window rows and columns 5-9
        means = {name: mu for name, (mu, _lv) in model.encode(x).items()}
        batches = [(x, means, PlaceEvidence(model, x, means))]
        rate = torch.zeros(16)
        rate[[5, 6, 10]] = 0.5
        assert merge_co_occurring(model, batches, rate) == [6]  # the smaller half
        rate[5] = 0.0  # without the other half, nothing co-occurs
        assert merge_co_occurring(model, batches, rate) == []


def test_training_learns_the_place_rates(tmp_path):
    torch.set_num_threads(1)
    config = {**LAYERED, "fg_kernel": 3, "bg_pool": 3, "bg_grid": 4, "fg_refine_steps": 5}
    training = {"epochs": 2, "batch_size": 32, "learning_rate": 3e-3, "device": "cpu"}
    images = _band_and_cells(64)
    train(images, config, training, seed=0, out_dir=tmp_path, val_images=images[:32])
    model, _ = load_trained(tmp_path / "model.pt")
    rate = model.foreground.place_rate
    assert ((rate > 0) & (rate < 1)).all() and not torch.allclose(rate, torch.full_like(rate, 0.5))
    # the EM fixed point on the first training images: r = mean sigmoid(logit r + e), e the
    # evidence at the readout's own presences under r
    x = torch.as_tensor(images[:64], dtype=torch.float32).unsqueeze(1)
    means = {n: m for n, (m, _) in refine(model, x, model.encode(x)).items()}
    with torch.no_grad():
        evidence = presences(model, x, means, rate)[1]
    expected = torch.sigmoid(torch.logit(rate.clamp(1e-4, 1 - 1e-4)) + evidence).mean(0)
    torch.testing.assert_close(rate, expected, atol=1e-3, rtol=0)


def test_an_image_size_that_nothing_divides_trains_and_is_scored(tmp_path):
    # 25 x 31 with 3 x 3 cells and a pooling of 4: padded to 36 x 36 inside the model
    from fgbg.evaluate import model_outputs

    config = {**LAYERED, "fg_kernel": 3, "bg_pool": 4, "bg_grid": 4, "fg_refine_steps": 2}
    images = torch.bernoulli(torch.full((48, 25, 31), 0.2)).numpy()
    train(images, config, {"epochs": 2, "batch_size": 16, "device": "cpu"}, 0, tmp_path)
    model, _ = load_trained(tmp_path / "model.pt")
    assert model.padding.padded == (36, 36)
    f = model_outputs(model, images[:5])["foreground"]
    assert f.shape == (5, 25, 31) and np.isfinite(f).all() and (f >= 0).all() and (f <= 1).all()


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_while_blind_the_foreground_is_off_on_intensities_only(likelihood):
    """On intensities the opening marks an active disk's windows as well as a cell's, so a
    blind foreground could still take a disk: it draws nothing in the blind epochs, and its
    templates learn nothing there. On binary images it draws from the opening."""
    torch.manual_seed(0)
    config = {**LAYERED, "fg_kernel": 3, "bg_pool": 3, "bg_grid": 4, "fg_blind_epochs": 2,
              "likelihood": likelihood}  # fmt: skip
    model = build_model(config, 12, 12)
    x = torch.as_tensor(_band_and_cells()[:8], dtype=torch.float32).unsqueeze(1)
    for epoch, blind in [(1, True), (2, True), (3, False), (None, False)]:
        model.zero_grad()
        terms = model.loss_terms(x, torch.Generator().manual_seed(0), epoch)
        terms["loss"].backward()
        off = blind and likelihood == "gaussian"
        assert (terms["fg_pixels"].item() < 1e-9) == off, epoch
        grad = model.foreground.templates.grad
        assert (grad is None or not grad.any()) == off, epoch
