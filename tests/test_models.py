"""The dual VAE, the baseline, their layers and their loss terms."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_training import DUAL, tiny_images
from torch import nn

from fgbg.layers import Padding, PatchConv2d, PatchConvTranspose2d, soft_opening
from fgbg.losses import gaussian_entropy, gaussian_kl, prior_cross_entropy
from fgbg.models import build_model
from fgbg.training import train


def binary_images(n, height, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, height, width, generator=generator) > 0.7).float()


@pytest.mark.parametrize(
    ("height", "width", "pool", "grid"),
    [(60, 60, 30, (2, 2)), (90, 90, 30, (3, 3)), (30, 30, 30, (1, 1)), (60, 90, 30, (2, 3))],
)
def test_dual_output_shapes(height, width, pool, grid):
    model = build_model({"type": "dual", "pool_size": pool}, height, width)
    x = binary_images(3, height, width)
    posteriors = model.encode(x)
    assert list(posteriors) == ["z1", "z2"]
    assert [tuple(mu.shape) for mu, _ in posteriors.values()] == [(3, 4), (3, 1)]
    assert [tuple(lv.shape) for _, lv in posteriors.values()] == [(3, 4), (3, 1)]
    out = model.decode({k: mu for k, (mu, _) in posteriors.items()})
    assert out["foreground"].shape == (3, 1, height, width)
    assert out["background"].shape == (3, 1, *grid)
    assert model.background_target(x).shape == (3, 1, *grid)


@pytest.mark.parametrize(("height", "width"), [(60, 60), (90, 90), (36, 48)])
def test_vae_output_shapes(height, width):
    model = build_model({"type": "vae"}, height, width)
    posteriors = model.encode(binary_images(2, height, width))
    assert list(posteriors) == ["z"] and posteriors["z"][0].shape == (2, 5)
    out = model.decode({"z": torch.zeros(2, 5)})
    assert list(out) == ["foreground"] and out["foreground"].shape == (2, 1, height, width)


def test_widths_and_latent_sizes_come_from_the_config():
    config = {"type": "dual", "z1_dim": 3, "z2_dim": 2, "fg_channels": [8, 16, 16], "pool_size": 20}
    model = build_model(config, 60, 60)
    posteriors = model.encode(binary_images(2, 60, 60))
    assert [mu.shape[1] for mu, _ in posteriors.values()] == [3, 2]
    out = model.decode({k: mu for k, (mu, _) in posteriors.items()})
    assert out["foreground"].shape == (2, 1, 60, 60) and out["background"].shape == (2, 1, 3, 3)
    assert build_model({"type": "vae", "latent_dim": 7}, 60, 60).encode(binary_images(1, 60, 60))[
        "z"
    ][0].shape == (1, 7)


def test_an_unknown_type_is_refused():
    with pytest.raises(ValueError, match="model type"):
        build_model({"type": "gan"}, 60, 60)


@pytest.mark.parametrize("kind", ["dual", "vae", "layered"])
def test_any_image_size_is_padded_in_and_cropped_out(kind):
    # 64 x 47: neither the cell size 6 nor the poolings (30, 6) divide a side
    model = build_model({"type": kind}, 64, 47)
    assert model.padding.padded == {"dual": (90, 60), "vae": (66, 48), "layered": (66, 48)}[kind]
    x = binary_images(3, 64, 47)
    out = model.decode({k: mu for k, (mu, _) in model.encode(x).items()})
    assert out["foreground"].shape == (3, 1, 64, 47)
    assert model.foreground_layer(x).shape == (3, 1, 64, 47)
    terms = model.loss_terms(x, torch.Generator().manual_seed(0), epoch=1)
    assert torch.isfinite(terms["loss"])


def test_padding_is_the_identity_where_the_sides_divide():
    padding = Padding(60, 48, 6)
    x = torch.rand(2, 1, 60, 48)
    assert padding.padded == (60, 48) and padding.pad(x) is x and padding.crop(x) is x
    odd = Padding(61, 47, 6)
    assert odd.padded == (66, 48)
    padded = odd.pad(torch.ones(1, 1, 61, 47))
    assert padded.shape == (1, 1, 66, 48) and padded.sum() == 61 * 47  # zeros below, right
    assert torch.equal(odd.crop(padded), torch.ones(1, 1, 61, 47))


@pytest.mark.parametrize(("channels", "size"), [(1, 60), (3, 61)])
def test_patch_conv_equals_conv2d(channels, size):
    torch.manual_seed(0)
    patch = PatchConv2d(channels, 5, 6)
    conv = nn.Conv2d(channels, 5, 6, stride=6)
    conv.load_state_dict(patch.state_dict())
    x = torch.randn(4, channels, size, size)
    torch.testing.assert_close(patch(x), conv(x), rtol=1e-5, atol=1e-5)


def test_patch_conv_transpose_equals_conv_transpose2d():
    torch.manual_seed(0)
    patch = PatchConvTranspose2d(7, 2, 6)
    conv = nn.ConvTranspose2d(7, 2, 6, stride=6)
    conv.load_state_dict(patch.state_dict())
    x = torch.randn(3, 7, 5, 4)
    torch.testing.assert_close(patch(x), conv(x), rtol=1e-5, atol=1e-5)
    # and the gradients agree too
    x.requires_grad_(True)
    (grad_patch,) = torch.autograd.grad(patch(x).pow(2).sum(), x)
    (grad_conv,) = torch.autograd.grad(conv(x).pow(2).sum(), x)
    torch.testing.assert_close(grad_patch, grad_conv, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k", [3, 6])
def test_soft_opening_equals_the_pooling_form(k):
    """The shifted-view opening is the average-then-max pooling it replaces: exactly on
    binary images (window sums of 0/1 are exact), to rounding on continuous ones."""
    generator = torch.Generator().manual_seed(0)
    binary = (torch.rand(4, 1, 30, 24, generator=generator) < 0.7).float()
    binary[:, :, 5 : 5 + k, 8 : 8 + k] = 1  # at least one hole-free window

    def pooled(x, sharpness):
        full = torch.relu(1 - sharpness * (1 - F.avg_pool2d(x, k, stride=1)))
        return F.max_pool2d(F.pad(full, (k - 1,) * 4), k, stride=1)

    assert torch.equal(soft_opening(binary, k), pooled(binary, 72.0))
    assert soft_opening(binary, k).sum() >= k * k
    continuous = torch.rand(4, 1, 30, 24, generator=generator)
    torch.testing.assert_close(soft_opening(continuous, k, 2.0), pooled(continuous, 2.0))


def test_patch_layers_initialise_like_torch():
    torch.manual_seed(3)
    patch = PatchConv2d(1, 4, 6)
    torch.manual_seed(3)
    conv = nn.Conv2d(1, 4, 6, stride=6)
    torch.testing.assert_close(patch.weight, conv.weight)
    torch.testing.assert_close(patch.bias, conv.bias)


def test_analytic_kl_matches_monte_carlo():
    mu = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]], dtype=torch.float64)
    logvar = torch.tensor([[0.1, -0.7, 0.4], [1.2, -2.0, 0.0]], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    z = mu + (0.5 * logvar).exp() * torch.randn(
        200_000, *mu.shape, generator=generator, dtype=mu.dtype
    )
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    prior = torch.distributions.Normal(0.0, 1.0)
    monte_carlo = (q.log_prob(z) - prior.log_prob(z)).sum(-1).mean(0)
    analytic = gaussian_kl(mu, logvar)
    torch.testing.assert_close(analytic, monte_carlo, rtol=0.02, atol=0.01)
    assert gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3)).item() == 0.0
    # against a given diagonal Gaussian prior: torch's own closed form
    mean = torch.tensor([0.2, -0.5, 1.0], dtype=torch.float64)
    var = torch.tensor([0.01, 2.0, 0.5], dtype=torch.float64)
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(mean, var.sqrt()))
    torch.testing.assert_close(gaussian_kl(mu, logvar, (mean, var)), expected.sum(-1))


def _bce_log_likelihood(logits, target):
    p = 1 / (1 + np.exp(-logits))
    return (target * np.log(p) + (1 - target) * np.log(1 - p)).reshape(len(p), -1).sum(1)


def _kl(mu, logvar):
    return 0.5 * (mu**2 + np.exp(logvar) - 1 - logvar).sum(1)


def test_dual_loss_terms_match_a_hand_computation():
    torch.manual_seed(0)
    config = {"type": "dual", "background_weight": 450.0, "target_sharpness": 12.0}
    model = build_model(config, 60, 60).double()
    x = binary_images(4, 60, 60).double()
    terms = model.loss_terms(x, torch.Generator().manual_seed(5))

    # the same sample drawn by hand: eps in key order z1 then z2 from the same generator
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        post = {k: (mu.numpy(), lv.numpy()) for k, (mu, lv) in model.encode(x).items()}
        eps1 = torch.randn((4, 4), generator=generator, dtype=torch.float64).numpy()
        eps2 = torch.randn((4, 1), generator=generator, dtype=torch.float64).numpy()
        z1 = post["z1"][0] + np.exp(0.5 * post["z1"][1]) * eps1
        z2 = post["z2"][0] + np.exp(0.5 * post["z2"][1]) * eps2
        out = model.decode({"z1": torch.from_numpy(z1), "z2": torch.from_numpy(z2)})
    xs = x.numpy()[:, 0]
    block_means = xs.reshape(4, 2, 30, 2, 30).mean(axis=(2, 4))
    target = 1 / (1 + np.exp(-12.0 * (block_means - 0.5)))
    ll_fg = _bce_log_likelihood(out["foreground"].numpy()[:, 0], xs).mean()
    ll_bg = _bce_log_likelihood(out["background"].numpy()[:, 0], target).mean()
    kl_z1, kl_z2 = _kl(*post["z1"]).mean(), _kl(*post["z2"]).mean()
    expected = {
        "ll_fg": ll_fg,
        "kl_z1": kl_z1,
        "ll_bg": ll_bg,
        "kl_z2": kl_z2,
        "loss": -(ll_fg - kl_z1) - 450.0 * (ll_bg - kl_z2),
    }
    assert set(terms) == set(expected)
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-9), name


def test_vae_loss_terms_and_gaussian_likelihood():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 60, 60, dtype=torch.float64)
    model = build_model({"type": "vae", "likelihood": "gaussian", "gaussian_sd": 0.5}, 60, 60)
    model = model.double()
    terms = model.loss_terms(x, torch.Generator().manual_seed(1))
    assert set(terms) == {"loss", "ll_fg", "kl_z"}
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        mu, logvar = model.encode(x)["z"]
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        mean = model.decode({"z": z})["foreground"]
    ll = torch.distributions.Normal(mean, 0.5).log_prob(x).sum(dim=(1, 2, 3)).mean()
    assert terms["ll_fg"].item() == pytest.approx(ll.item(), rel=1e-9)
    assert terms["loss"].item() == pytest.approx(
        -(ll.item() - gaussian_kl(mu, logvar).mean().item())
    )


def test_background_target_is_sharpened_block_mean():
    model = build_model({"type": "dual", "target_sharpness": 12.0}, 60, 60)
    x = torch.zeros(1, 1, 60, 60)
    x[0, 0, :30, :30] = 1.0  # top-left block all on
    x[0, 0, 30:, 30:45] = 1.0  # bottom-right block half on
    target = model.background_target(x)[0, 0]
    expected = torch.tensor(
        [[1 / (1 + math.exp(-6)), 1 / (1 + math.exp(6))], [1 / (1 + math.exp(6)), 0.5]]
    )
    torch.testing.assert_close(target, expected)


def test_interaction_mixes_the_latents():
    torch.manual_seed(0)
    model = build_model({"type": "dual"}, 60, 60).eval()
    z1 = torch.randn(2, 4)
    with torch.no_grad():
        a = model.decode({"z1": z1, "z2": torch.zeros(2, 1)})
        b = model.decode({"z1": z1, "z2": torch.full((2, 1), 3.0)})
        c = model.decode({"z1": z1 + 1.0, "z2": torch.zeros(2, 1)})
    assert (a["foreground"] - b["foreground"]).abs().max() > 1e-3  # z2 reaches the foreground
    assert (a["background"] - c["background"]).abs().max() > 1e-3  # z1 reaches the background


def test_background_kl_weight_scales_only_the_z2_kl():
    torch.manual_seed(0)
    x = binary_images(3, 60, 60).double()
    model = build_model({"type": "dual", "background_kl_weight": 1.0}, 60, 60).double()
    t = {k: v.item() for k, v in model.loss_terms(x, torch.Generator().manual_seed(2)).items()}
    expected = -(t["ll_fg"] - t["kl_z1"]) - 450.0 * t["ll_bg"] + 1.0 * t["kl_z2"]
    assert t["loss"] == pytest.approx(expected, rel=1e-12)


THESIS_CODE = {"prior_on": "interaction", "decoder_l2": 0.01, "background_entropy_weight": 1.0}


def test_defaults_of_the_thesis_code_keys_leave_the_loss_bit_identical():
    torch.manual_seed(0)
    x = binary_images(3, 60, 60)
    model = build_model({"type": "dual"}, 60, 60)
    explicit = {"prior_on": "latents", "background_entropy_weight": None, "decoder_l2": 0.0}
    assert {k: model.config[k] for k in explicit} == explicit
    terms = model.loss_terms(x, torch.Generator().manual_seed(3))
    assert list(terms) == ["loss", "ll_fg", "kl_z1", "ll_bg", "kl_z2"]
    # the formula before these keys existed, step by step
    with torch.no_grad():
        posteriors = model.encode(x)
        out = model.decode(model.sample(posteriors, torch.Generator().manual_seed(3)))
        ll_fg = model.foreground_log_likelihood(out["foreground"], x).mean()
        target = model.background_target(x)
        ll_bg = (
            -nn.functional.binary_cross_entropy_with_logits(
                out["background"], target, reduction="none"
            )
            .flatten(1)
            .sum(1)
            .mean()
        )
        kl_z1 = gaussian_kl(*posteriors["z1"]).mean()
        kl_z2 = gaussian_kl(*posteriors["z2"]).mean()
        loss = -(ll_fg - kl_z1) - 450.0 * ll_bg + 450.0 * kl_z2
    previous = {"loss": loss, "ll_fg": ll_fg, "kl_z1": kl_z1, "ll_bg": ll_bg, "kl_z2": kl_z2}
    for name, value in previous.items():
        assert torch.equal(terms[name], value), name
    vae = build_model({"type": "vae"}, 60, 60)
    assert list(vae.loss_terms(x)) == ["loss", "ll_fg", "kl_z"]


def test_cross_entropy_minus_entropy_is_the_kl():
    mu = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]], dtype=torch.float64)
    logvar = torch.tensor([[0.1, -0.7, 0.4], [1.2, -2.0, 0.0]], dtype=torch.float64)
    split = prior_cross_entropy(mu, logvar.exp()) - gaussian_entropy(logvar)
    torch.testing.assert_close(split, gaussian_kl(mu, logvar), rtol=1e-12, atol=1e-12)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    torch.testing.assert_close(gaussian_entropy(logvar), q.entropy().sum(1))


def test_interaction_prior_matches_monte_carlo():
    torch.manual_seed(0)
    model = build_model({"type": "dual", "prior_on": "interaction"}, 60, 60).double()
    x = binary_images(3, 60, 60).double()
    with torch.no_grad():
        model.interaction.bias.normal_()  # a non-trivial affine map
        terms = model.loss_terms(x, torch.Generator().manual_seed(2))
        (mu1, lv1), (mu2, lv2) = model.encode(x).values()
        mu, sd = torch.cat([mu1, mu2], 1), torch.cat([lv1, lv2], 1).mul(0.5).exp()
        generator = torch.Generator().manual_seed(0)
        z = mu + sd * torch.randn(100_000, *mu.shape, generator=generator, dtype=mu.dtype)
        t = model.interaction(z)  # (samples, images, 5)
        q = torch.distributions.Normal(mu, sd)
        log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(t)
        log_q = q.log_prob(z)
    # one-sample estimates of E_q[log q(z_k) - log N(t_k; 0, I)], averaged over samples
    for name, block in {"kl_z1": slice(0, 4), "kl_z2": slice(4, 5)}.items():
        monte_carlo = (log_q[..., block] - log_prior[..., block]).sum(-1).mean(0).mean()
        assert terms[name].item() == pytest.approx(monte_carlo.item(), rel=0.01, abs=0.01), name
    # and it is not the KL on the latents
    assert abs(terms["kl_z1"].item() - gaussian_kl(mu1, lv1).mean().item()) > 0.05


def test_decoder_l2_is_the_weights_sum_of_squares():
    torch.manual_seed(0)
    x = binary_images(2, 60, 60).double()
    for config, decoders in [
        ({"type": "dual"}, ("fg_decoder", "bg_decoder")),
        ({"type": "vae"}, ("fg_decoder",)),
    ]:
        plain = build_model(config, 60, 60).double()
        penalised = build_model({**config, "decoder_l2": 0.01}, 60, 60).double()
        penalised.load_state_dict(plain.state_dict())
        squares = sum(
            (p.detach().numpy() ** 2).sum()
            for name, p in plain.named_parameters()
            if name.split(".")[0] in decoders and name.endswith(".weight")
        )
        a = plain.loss_terms(x, torch.Generator().manual_seed(1))
        b = penalised.loss_terms(x, torch.Generator().manual_seed(1))
        assert "decoder_l2" not in a
        assert b["decoder_l2"].item() == pytest.approx(0.01 * squares, rel=1e-12)
        assert b["loss"].item() == pytest.approx(a["loss"].item() + 0.01 * squares, rel=1e-12)


def test_entropy_weight_splits_the_z2_kl():
    torch.manual_seed(0)
    x = binary_images(3, 60, 60).double()
    model = build_model({"type": "dual", "background_entropy_weight": 1.0}, 60, 60).double()
    t = {k: v.item() for k, v in model.loss_terms(x, torch.Generator().manual_seed(2)).items()}
    with torch.no_grad():
        (mu1, lv1), (mu2, lv2) = ((mu.numpy(), lv.numpy()) for mu, lv in model.encode(x).values())
    ce_z2 = (0.5 * (mu2**2 + np.exp(lv2) + math.log(2 * math.pi))).sum(1).mean()
    h_z2 = (0.5 * (1 + math.log(2 * math.pi) + lv2)).sum(1).mean()
    assert t["ce_z2"] == pytest.approx(ce_z2, rel=1e-12)
    assert t["entropy_z2"] == pytest.approx(h_z2, rel=1e-12)
    assert t["kl_z1"] == pytest.approx(_kl(mu1, lv1).mean(), rel=1e-9)
    assert t["kl_z2"] == pytest.approx(_kl(mu2, lv2).mean(), rel=1e-9)
    expected = -(t["ll_fg"] - t["kl_z1"]) - 450.0 * t["ll_bg"] + 450.0 * ce_z2 - 1.0 * h_z2
    assert t["loss"] == pytest.approx(expected, rel=1e-12)


def test_thesis_code_settings_train(tmp_path):
    history = train(
        tiny_images(40),
        {**DUAL, **THESIS_CODE},
        {"epochs": 2, "batch_size": 5, "device": "cpu"},
        seed=0,
        out_dir=tmp_path,
    )
    assert {"ce_z2", "entropy_z2", "decoder_l2"} <= set(history[0])
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(math.isfinite(row["loss"]) for row in history)
