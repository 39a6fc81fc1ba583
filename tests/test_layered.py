"""The layered VAE: shapes, the noisy-OR likelihood against a hand computation, a tiny run
that learns, and the evaluation's read-out (f alone)."""

import math

import numpy as np
import pytest
import torch
from fgbg.losses import gaussian_kl
from fgbg.models import build_model, resolve_config
from fgbg.models.layered import PLACE_PRIOR_MIN_VAR, noisy_or_log_likelihood
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
    f = model.foreground_layer(x)  # presence (the default) at the refined posterior means
    refined = model.refine(x, posteriors)
    means = {k: mu for k, (mu, _) in refined.items()}
    torch.testing.assert_close(f, model.presence_foreground(x, means))
    as_means = build_model({**LAYERED, "fg_readout": "means"}, 12, 18)
    as_means.load_state_dict(model.state_dict(), strict=False)  # the same weights, no rates
    at_means = torch.sigmoid(model.decode(means)["foreground"])
    torch.testing.assert_close(as_means.foreground_layer(x), at_means)
    assert not torch.allclose(f, at_means)
    assert f.shape == (3, 1, 12, 18) and (f >= 0).all() and (f <= 1).all()
    terms = model.loss_terms(x, torch.Generator().manual_seed(0), epoch=1)
    assert set(terms) == {"loss", "ll", "kl_fg", "kl_bg", "fg_pixels"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in terms.values())


def _logit(p):
    return torch.log(p / (1 - p))


def test_background_upsampling_is_bilinear_interpolation():
    model = build_model({"type": "layered", "bg_grid": 10}, 60, 48)
    coarse = torch.randn(3, 1, 10, 10)
    expected = torch.nn.functional.interpolate(
        coarse, size=(60, 48), mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(model.upsample(coarse), expected)
    assert not any("upsample" in key for key in model.state_dict())  # not saved with weights


def test_foreground_kl_weight_rises_to_its_final_value():
    model = build_model(
        {"type": "layered", "fg_kl_weight": 0.1, "fg_kl_weight_final": 1.0,
         "fg_kl_ramp_start": 2, "fg_kl_ramp_epochs": 3},
        60, 60,
    )  # fmt: skip
    weights = [model.fg_kl_weight(epoch) for epoch in range(1, 8)]
    assert weights == pytest.approx([0.1, 0.1, 0.4, 0.7, 1.0, 1.0, 1.0])
    assert model.fg_kl_weight(None) == 1.0 and model.warmup_epochs() == 5
    constant = build_model({"type": "layered"}, 60, 60)
    assert constant.fg_kl_weight(3) == constant.fg_kl_weight(None) == 0.1
    assert constant.warmup_epochs() == constant.config["fg_blind_epochs"] == 5  # blind start
    assert build_model({**LAYERED, "fg_blind_epochs": 0}, 60, 60).warmup_epochs() == 0


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


def test_gradient_floor_changes_gradients_only():
    f_logits = torch.full((1, 1, 1, 2), -8.0, requires_grad=True)
    b_logits = torch.full((1, 1, 1, 2), math.log(0.84 / 0.16))
    x = torch.tensor([[[[1.0, 0.0]]]])
    plain = noisy_or_log_likelihood(f_logits, b_logits, x)
    (grad,) = torch.autograd.grad(plain, f_logits)
    floored = noisy_or_log_likelihood(f_logits, b_logits, x, f_grad_floor=0.3)
    (grad_floor,) = torch.autograd.grad(floored, f_logits)
    assert torch.allclose(plain, floored)
    assert 0 < grad[0, 0, 0, 0] < 1e-3  # vanishes with f on an on-pixel the background explains
    assert grad_floor[0, 0, 0, 0] > 100 * grad[0, 0, 0, 0]
    assert grad_floor[0, 0, 0, 1] == grad[0, 0, 0, 1]  # off-pixels keep the true gradient


def _band_and_cells(n=256, seed=0):
    """12 x 12 images: two 3 x 3 cells (each on w.p. 0.5) and a noisy 6 x 12 band (p 0.7)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 12, 12), np.uint8)
    band = rng.random(n) < 0.7
    x[:, 6:, :] = (rng.random((n, 6, 12)) < 0.8) & band[:, None, None]
    for r, c in [(1, 1), (7, 7)]:
        x[rng.random(n) < 0.5, r : r + 3, c : c + 3] = 1
    return x


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


def test_position_map_tells_places_apart():
    plain = build_model({**LAYERED, "bg_grid": 4}, 24, 24)
    placed = build_model({**LAYERED, "bg_grid": 4, "fg_position": True}, 24, 24)
    placed.load_state_dict(plain.state_dict(), strict=False)  # same weights, position maps 0
    z = {"z_fg": torch.zeros(1, 2 * 16), "z_bg": torch.zeros(1, 4)}
    torch.testing.assert_close(placed.decode(z)["foreground"], plain.decode(z)["foreground"])
    # a constant latent map paints the same patch everywhere; the position map breaks that,
    # and only within its reach (patch_context 3: the neighbouring patches)
    before = placed.decode(z)["foreground"][0, 0]
    with torch.no_grad():
        placed.fg_decoder_position[0, :, 0, 0] = 3.0
    changed = (placed.decode(z)["foreground"][0, 0] - before).abs() > 1e-6
    assert changed[:6, :6].all() and changed[:12, :12].any() and not changed[12:, :].any()
    assert not changed[:, 12:].any()


def test_a_blind_foreground_encoder_sees_the_opening_only():
    with pytest.raises(ValueError, match="need fg_opening"):
        build_model({**LAYERED, "fg_blind_epochs": 2, "fg_opening": False}, 12, 12)
    model = build_model({**LAYERED, "fg_kernel": 3, "bg_pool": 3, "bg_grid": 4,
                         "fg_blind_epochs": 2}, 12, 12)  # fmt: skip
    assert (build_model(LAYERED, 12, 12).fg_encoder[0].weight[:, 0] == 0).all()  # default 5
    assert (model.fg_encoder[0].weight[:, 0] == 0).all() and model.warmup_epochs() == 2
    with torch.no_grad():  # as if trained: the image's weights are no longer 0
        model.fg_encoder[0].weight[:, 0].normal_()
    empty = torch.zeros(1, 1, 12, 12)
    speckled = empty.clone()
    speckled[0, 0, ::2, ::2] = 1  # no hole-free 3 x 3 window: its opening is 0, as is empty's
    for epoch, same in [(1, True), (2, True), (3, False), (None, False)]:
        mu_empty = model.encode(empty, epoch)["z_fg"][0]
        mu_speckled = model.encode(speckled, epoch)["z_fg"][0]
        assert torch.equal(mu_empty, mu_speckled) == same, epoch


def test_presence_gates_patches_and_charges_by_place():
    model = build_model({**LAYERED, "fg_kernel": 3, "bg_pool": 3, "bg_grid": 4,
                         "fg_presence": True, "fg_painter": "shared", "fg_refine_steps": 0,
                         "fg_readout": "means"},
                        6, 6)  # fmt: skip
    x = torch.bernoulli(torch.full((2, 1, 6, 6), 0.3))
    posteriors = model.encode(x)
    assert posteriors["s_fg"][0].shape == (2, 4) and posteriors["s_fg"][1] is None
    z = {"z_fg": torch.zeros(1, 8), "z_bg": torch.zeros(1, 4)}
    on = torch.tensor([[30.0, -30.0, -30.0, -30.0]])  # only the top-left patch present
    f = torch.sigmoid(model.decode({**z, "s_fg": on})["foreground"])[0, 0]
    painted = torch.sigmoid(model.decode({**z, "s_fg": torch.full((1, 4), 30.0)})["foreground"])
    torch.testing.assert_close(f[:3, :3], painted[0, 0, :3, :3])
    assert f[3:, :].max() < 1e-12 and f[:, 3:].max() < 1e-12
    # a patch's KL is 0 at its prior's rate and grows as the prior makes the place rare
    model.eval()
    assert model.presence_kl(torch.zeros(1, 4)).item() == pytest.approx(0.0, abs=1e-6)
    model.presence_rate[0, 0, 1] = 0.0025
    used = torch.tensor([[0.0, 6.0, 0.0, 0.0]])
    assert model.presence_kl(used).item() > 5.0
    # in training the rate follows the presence the encoder gives each place
    model.train()
    for _ in range(2000):
        model.presence_kl(torch.tensor([[6.0, -6.0, -6.0, -6.0]]))
    rate = model.presence_rate.flatten()
    assert rate[0] > 0.99 and (rate[1:] < 0.01).all()
    assert "presence_rate" in model.state_dict()  # saved with the weights
    terms = model.loss_terms(x, torch.Generator().manual_seed(0), epoch=1)
    assert torch.isfinite(terms["loss"])


def test_place_prior_narrows_where_the_posteriors_agree():
    model = build_model({**LAYERED, "fg_kernel": 3, "bg_pool": 3, "bg_grid": 4,
                         "fg_place_prior": True}, 6, 6)  # fmt: skip
    n = resolve_config(LAYERED)["patch_latent"] * 4
    assert model.place_prior_var.shape == (n,) and "place_prior_var" in model.state_dict()
    model.eval()  # at the start the prior is N(0, I): the standard KL
    mu, logvar = torch.randn(3, n), torch.randn(3, n) * 0.1
    torch.testing.assert_close(model.foreground_kl(mu, logvar), gaussian_kl(mu, logvar))
    # in training the prior follows the posteriors' moments place by place (not in the
    # warm-up): dimension 0 is the same in every image (it narrows to the floor), dimension 1
    # is +-2 (it stays wide)
    model.train()
    model.foreground_kl(mu, logvar, epoch=model.warmup_epochs())
    assert (model.place_prior_var == 1).all() and (model.place_prior_mean == 0).all()
    sign = torch.tensor([[1.0], [-1.0]])
    for _ in range(2000):
        mu = torch.zeros(2, n)
        mu[:, 0], mu[:, 1] = 0.5, 2 * sign[:, 0]
        model.foreground_kl(mu, torch.full((2, n), -10.0))
    assert model.place_prior_mean[0].item() == pytest.approx(0.5, abs=1e-3)
    assert model.place_prior_var[0].item() == pytest.approx(PLACE_PRIOR_MIN_VAR)
    assert model.place_prior_var[1].item() == pytest.approx(4.0, rel=1e-2)
    # the same move away from the prior's mean costs far more at the narrow place
    model.eval()
    at_prior = model.place_prior_mean.expand(1, n).clone()
    logvar = model.place_prior_var.log().expand(1, n).clone()
    assert model.foreground_kl(at_prior, logvar).item() == pytest.approx(0.0, abs=1e-4)
    narrow, wide = at_prior.clone(), at_prior.clone()
    narrow[0, 0] += 1.0
    wide[0, 1] += 1.0
    assert model.foreground_kl(narrow, logvar).item() == pytest.approx(50.0, rel=1e-3)
    assert model.foreground_kl(wide, logvar).item() == pytest.approx(0.125, rel=1e-2)


def test_place_painter_paints_each_template_at_its_own_place():
    model = build_model({**LAYERED, "bg_grid": 4, "fg_painter": "place"}, 24, 24)
    z = {"z_fg": torch.zeros(1, 2 * 16), "z_bg": torch.zeros(1, 4)}
    with torch.no_grad():
        model.fg_decoder[-1].weight.zero_()
        model.fg_decoder[-1].bias.fill_(30.0)  # every gate open
        model.fg_templates.fill_(-3.0)  # logits -30 (TEMPLATE_SCALE 10)
        model.fg_templates[0, :, 5] = 3.0  # patch (1, 1): pixels 6-11, its window 3-14
        model.fg_templates[0, :, 15] = 0.0  # patch (3, 3): half on, over its clipped window
    f = torch.sigmoid(model.decode(z)["foreground"])[0, 0]
    painted = f > 0.99
    assert painted[3:15, 3:15].all() and painted.sum() == 12 * 12
    # the half-on template of patch (3, 3) (pixels 18-23): 0.5 over its window, which
    # reaches back half a cell to 15 and is clipped at the image's edge
    torch.testing.assert_close(f[15:, 15:], torch.full((9, 9), 0.5), atol=1e-4, rtol=0)
    assert f[:3, :].max() < 1e-6 and f[15:18, :15].max() < 1e-6
    with torch.no_grad():
        model.fg_decoder[-1].bias.fill_(-30.0)  # gates closed: nothing at all
    assert torch.sigmoid(model.decode(z)["foreground"]).max() < 1e-6


def test_place_painter_and_presence_exclude_each_other():
    with pytest.raises(ValueError, match="exclude each other"):
        build_model({**LAYERED, "fg_painter": "place", "fg_presence": True, "fg_readout": "means"},
                    12, 12)  # fmt: skip


def _mean_elbo_loss(model, x, posteriors):
    """The negative ELBO at the posterior means (KL included), averaged over the images."""
    out = model.decode({name: mu for name, (mu, _lv) in posteriors.items()})
    return model.objective(x, out["foreground"], out["background"], posteriors)["loss"].item()


def test_refinement_lowers_each_images_loss_and_leaves_the_weights():
    torch.manual_seed(0)
    config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3, "fg_painter": "place"}
    model = build_model({**config, "fg_refine_steps": 40}, 12, 12)  # in training mode:
    x = torch.as_tensor(_band_and_cells()[:16], dtype=torch.float32).unsqueeze(1)
    weights = {k: v.clone() for k, v in model.state_dict().items()}  # the prior's too
    with torch.no_grad():  # as in the evaluation: the steps take their own gradients
        encoded = model.encode(x)
        refined = model.refine(x, encoded)
        again = model.refine(x, encoded)
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
        torch.testing.assert_close(plain.refine(x, encoded)["z_fg"][0], encoded["z_fg"][0])
        assert not torch.allclose(model.foreground_layer(x), plain.foreground_layer(x))


def _one(posteriors, i):
    return {name: (mu[i : i + 1], lv[i : i + 1]) for name, (mu, lv) in posteriors.items()}


def test_a_model_file_from_before_a_key_existed_loads_as_it_was_trained(tmp_path):
    """A file written before fg_painter, fg_refine_steps and fg_place_prior existed holds a
    shared painter, no refinement and no place prior; today's defaults would not fit it."""
    from fgbg.training import ADDED_LATER

    old = {"type": "layered", **ADDED_LATER["layered"]}
    model = build_model({**old, "bg_grid": 4}, 12, 12)
    stored = {k: v for k, v in resolve_config({**old, "bg_grid": 4}).items() if k not in old}
    torch.save(
        {"model_config": {"type": "layered", **stored}, "height": 12, "width": 12,
         "state_dict": model.state_dict()},
        tmp_path / "model.pt",
    )  # fmt: skip
    loaded, config = load_trained(tmp_path / "model.pt")
    assert config["fg_painter"] == "shared" and config["fg_refine_steps"] == 0
    assert not config["fg_place_prior"]
    x = torch.bernoulli(torch.full((2, 1, 12, 12), 0.3))
    torch.testing.assert_close(loaded.foreground_layer(x), model.eval().foreground_layer(x))
    with pytest.raises(RuntimeError):  # read with today's defaults, the weights do not fit
        build_model({"type": "layered", **stored}, 12, 12).load_state_dict(model.state_dict())


def _forced_gate_score(model, x, means, place, gate_logit):
    """log p(x | f, b) - fg_pixel_penalty sum f per image with place `place`'s gate logit set
    to `gate_logit`, the other gates as decoded: the objective's terms that the gate moves."""
    z = means["z_fg"].view(-1, model.config["patch_latent"], *model.grid)
    gates = model.fg_decoder(z).clone()
    gates.view(len(x), -1)[:, place] = gate_logit
    f_logits = model._place_painting(gates)
    b_logits = model.background_logits(means["z_bg"])
    pixels = torch.sigmoid(f_logits).flatten(1).sum(1)
    return (
        noisy_or_log_likelihood(f_logits, b_logits, x) - model.config["fg_pixel_penalty"] * pixels
    )


def test_place_evidence_is_the_objectives_difference_with_the_template_on_and_off():
    torch.manual_seed(0)
    config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3, "fg_painter": "place"}
    model = build_model({**config, "fg_readout": "presence"}, 12, 12).eval()
    with torch.no_grad():
        model.fg_templates.normal_(0, 0.3)  # templates that differ pixel by pixel
        x = torch.as_tensor(_band_and_cells()[:4], dtype=torch.float32).unsqueeze(1)
        means = {name: mu for name, (mu, _lv) in model.encode(x).items()}
        evidence = model.place_evidence(x, means)
        gates = model.place_gates(means["z_fg"])
        assert evidence.shape == gates.shape == (4, 16)
        for place in (0, 5, 15):  # a corner (its window clipped), the middle, the far corner
            expected = _forced_gate_score(model, x, means, place, 40.0) - _forced_gate_score(
                model, x, means, place, -40.0
            )
            torch.testing.assert_close(evidence[:, place], expected, rtol=1e-4, atol=2e-3)


def test_presence_readout_follows_the_rate_and_the_evidence():
    config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3, "fg_painter": "place"}
    model = build_model({**config, "fg_readout": "presence"}, 12, 12).eval()
    x = torch.as_tensor(_band_and_cells()[:8], dtype=torch.float32).unsqueeze(1)
    # place (1, 1), pixels 3-5 x 3-5, lies inside the windows of (0..2, 0..2): with every
    # template 1 its f is 1 - prod (1 - P_p) over those nine places
    neighbours = [r * 4 + c for r in range(3) for c in range(3)]
    f = {}
    with torch.no_grad():
        model.fg_templates.fill_(3.0)  # every template on over its whole window
        means = {name: mu for name, (mu, _lv) in model.encode(x).items()}
        evidence = model.place_evidence(x, means)
        for rate in (1e-4, 0.5):  # a place seldom used, and an even prior
            model.place_rate.fill_(rate)
            f[rate] = model.presence_foreground(x, means)[:, 0]
            presence = torch.sigmoid(math.log(rate / (1 - rate)) + evidence[:, neighbours])
            torch.testing.assert_close(
                f[rate][:, 4, 4], 1 - (1 - presence).prod(1), atol=1e-5, rtol=1e-4
            )
    assert (f[1e-4] <= f[0.5] + 1e-6).all() and (f[1e-4] < f[0.5] - 0.1).any()


def test_place_rates_follow_the_gates_in_training_only():
    config = {**LAYERED, "bg_grid": 4, "fg_kernel": 3, "bg_pool": 3, "fg_painter": "place"}
    model = build_model({**config, "fg_readout": "presence"}, 12, 12)
    z = {"z_fg": torch.randn(8, 2 * 16), "z_bg": torch.randn(8, model.config["bg_latent"])}
    with torch.no_grad():
        gates = model.place_gates(z["z_fg"])
        model.eval().decode(z)
        torch.testing.assert_close(model.place_rate, torch.full((16,), 0.5))  # eval: no change
        model.train().decode(z)
    torch.testing.assert_close(model.place_rate, 0.99 * 0.5 + 0.01 * gates.mean(0))
    means = build_model({**config, "fg_readout": "means"}, 12, 12).train()
    means.decode(z)
    assert not hasattr(means, "place_rate")


def test_training_learns_the_place_rates_and_older_files_read_the_means(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    config = {**LAYERED, "fg_kernel": 3, "bg_pool": 3, "bg_grid": 4, "fg_painter": "place",
              "fg_refine_steps": 5, "fg_readout": "presence"}  # fmt: skip
    training = {"epochs": 2, "batch_size": 32, "learning_rate": 3e-3, "device": "cpu"}
    images = _band_and_cells(64)

    def no_fit(*args, **kwargs):
        raise AssertionError("place rates fitted after training")

    monkeypatch.setattr(type(build_model(config, 12, 12)), "fit_place_rates", no_fit)
    train(images, config, training, seed=0, out_dir=tmp_path, val_images=images[:32])
    model, resolved = load_trained(tmp_path / "model.pt")
    assert resolved["fg_readout"] == "presence"
    rate = model.place_rate
    assert ((rate > 0) & (rate < 1)).all() and not torch.allclose(rate, torch.full_like(rate, 0.5))
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    del state["model_config"]["fg_readout"], state["state_dict"]["place_rate"]
    torch.save(state, tmp_path / "old.pt")  # a file from before the key: the means, as trained
    old, old_config = load_trained(tmp_path / "old.pt")
    assert old_config["fg_readout"] == "means" and not hasattr(old, "place_rate")


def test_presence_readout_needs_the_place_painter():
    with pytest.raises(ValueError, match="fg_readout: presence needs fg_painter: place"):
        build_model({**LAYERED, "fg_painter": "shared", "fg_readout": "presence"}, 12, 12)
