"""The dual VAE, the baseline, their layers and their loss terms."""

import math

import numpy as np
import pytest
import torch
from fgbg.layers import PatchConv2d, PatchConvTranspose2d
from fgbg.losses import gaussian_kl
from fgbg.models import build_model
from torch import nn


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


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="pool_size 30"):
        build_model({"type": "dual"}, 60, 66)
    with pytest.raises(ValueError, match="fg_kernel 6"):
        build_model({"type": "vae"}, 64, 64)
    with pytest.raises(ValueError, match="model type"):
        build_model({"type": "gan"}, 60, 60)


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
