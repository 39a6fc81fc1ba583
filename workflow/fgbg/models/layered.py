"""The layered VAE: a foreground layer and a background layer composed the way the data
are made, by a noisy-OR (SPEC section 8).

Generative model (H x W binary image x, cell size c, patch grid H / c x W / c):

    z_fg[i, j] ~ N(0, I_d)     one small latent per c x c patch (a cell-scale latent map)
    z_bg       ~ N(0, I_e)     one global background latent
    f = sigmoid(F(z_fg))       foreground layer; F: a patch_context x patch_context convolution
                               over the latent map (a cell that straddles patches is drawn by
                               one latent), then a c x c patch painter
    b = sigmoid(B(z_bg))       background layer; B: an MLP to a coarse bg_grid x bg_grid map
                               of logits, bilinearly upsampled ("coarse"), or to H x W ("full")
    x[p] ~ Bernoulli(1 - (1 - f[p]) (1 - b[p]))   a pixel is on when a cell or the
                                                  background turns it on

    loss = -E_q[log p(x | z_fg, z_bg)] + fg_kl_weight KL(z_fg) + KL(z_bg)
           + fg_pixel_penalty * sum_p f[p]        (one reparameterised sample, analytic KL)

The foreground output the evaluation scores is f alone (`foreground_layer`).

What keeps the layers apart (measured; README "The layered model"):
- the foreground pays per patch it uses (its KL) and per expected pixel it draws
  (fg_pixel_penalty), and paints only locally: a 30-pixel disk costs it about 25 patches and
  700 pixels of penalty, the background one global latent. The penalty is what brings the
  leakage down;
- the background is a low-dimensional global code decoded on a coarse map: it cannot draw a
  sharp cell (a full-resolution background takes the cells' mean and the foreground dies);
- a cell-scale latent map gives the foreground the capacity for ten independent cells.
Known limit: cells under an active disk are not told apart. Where the background already
explains a pixel, d log p / d(f logit) is proportional to f, so once f is near 0 there a cell
cannot be switched back on. `fg_grad_floor` raises that gradient on on-pixels (backward
only; the loss value is unchanged) and `bg_warmup_epochs` trains the background alone first:
both are ablations, off by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fgbg.layers import PatchConv2d, PatchConvTranspose2d
from fgbg.losses import gaussian_kl
from fgbg.models.base import reparameterise


def _floored_rate(logits, floor: float, where):
    """softplus(logits) = -log(1 - sigmoid(logits)); in the backward pass its gradient,
    sigmoid(logits), is raised to at least `floor` on the pixels `where`."""
    rate = F.softplus(logits)
    if floor <= 0:
        return rate
    extra = ((floor - torch.sigmoid(logits)).clamp_min(0) * where).detach()
    return rate + extra * (logits - logits.detach())


def noisy_or_log_likelihood(f_logits, b_logits, x, f_grad_floor: float = 0.0):
    """Per-image log p(x) under p = 1 - (1 - f)(1 - b), computed from logits: with
    a = -log(1 - p) = softplus(f_logits) + softplus(b_logits), log p = log(1 - exp(-a))."""
    a = (_floored_rate(f_logits, f_grad_floor, x) + F.softplus(b_logits)).clamp_min(1e-7)
    log_p = torch.where(a < 0.6931, torch.log(-torch.expm1(-a)), torch.log1p(-torch.exp(-a)))
    return (x * log_p - (1 - x) * a).flatten(1).sum(dim=1)


class LayeredVAE(nn.Module):
    def __init__(self, config: dict, height: int, width: int):
        super().__init__()
        c = config
        self.config, self.height, self.width = c, height, width
        k, ch, d, ctx = c["fg_kernel"], c["patch_channels"], c["patch_latent"], c["patch_context"]
        if height % c["bg_pool"] or width % c["bg_pool"]:
            raise ValueError(f"image size {height} x {width} is not divisible by bg_pool")
        self.grid = (height // k, width // k)
        pad = ctx // 2
        self.fg_encoder = nn.Sequential(
            PatchConv2d(1, ch, k),
            nn.ReLU(),
            nn.Conv2d(ch, ch, ctx, padding=pad),
            nn.ReLU(),
            nn.Conv2d(ch, 2 * d, 1),
        )
        self.fg_decoder = nn.Sequential(
            nn.Conv2d(d, ch, ctx, padding=pad),
            nn.ReLU(),
            nn.Conv2d(ch, ch, 1),
            nn.ReLU(),
            PatchConvTranspose2d(ch, 1, k),
        )
        pooled = (height // c["bg_pool"]) * (width // c["bg_pool"])
        hidden, e = c["bg_width"], c["bg_latent"]
        self.bg_encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(pooled, hidden), nn.ReLU(), nn.Linear(hidden, 2 * e)
        )
        out = height * width if c["bg_decoder"] == "full" else c["bg_grid"] ** 2
        self.bg_decoder = nn.Sequential(
            nn.Linear(e, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, out),
        )  # fmt: skip
        with torch.no_grad():  # both layers start nearly empty, the foreground less so
            self.fg_decoder[-1].bias.fill_(c["fg_init_bias"])
            self.bg_decoder[-1].bias.fill_(-4.0)

    def encode(self, x):
        """{"z_fg": (mu, logvar) flattened to (N, d * h * w), "z_bg": (mu, logvar) (N, e)}."""
        mu_bg, logvar_bg = self.bg_encoder(F.avg_pool2d(x, self.config["bg_pool"])).chunk(2, 1)
        mu_fg, logvar_fg = self.fg_encoder(x).flatten(1).view(len(x), 2, -1).unbind(1)
        return {"z_fg": (mu_fg, logvar_fg), "z_bg": (mu_bg, logvar_bg)}

    def background_logits(self, z_bg):
        b = self.bg_decoder(z_bg)
        if self.config["bg_decoder"] == "full":
            return b.view(-1, 1, self.height, self.width)
        g = self.config["bg_grid"]
        size = (self.height, self.width)
        return F.interpolate(b.view(-1, 1, g, g), size=size, mode="bilinear", align_corners=False)

    def decode(self, latents):
        """{"foreground": f logits, "background": b logits} (N, 1, H, W) each."""
        z = latents["z_fg"].view(-1, self.config["patch_latent"], *self.grid)
        return {
            "foreground": self.fg_decoder(z),
            "background": self.background_logits(latents["z_bg"]),
        }

    def layers(self, x):
        """(f, b) probabilities at the posterior means, (N, 1, H, W) each."""
        means = {name: mu for name, (mu, _logvar) in self.encode(x).items()}
        out = self.decode(means)
        return torch.sigmoid(out["foreground"]), torch.sigmoid(out["background"])

    def foreground_layer(self, x, switched_off=()):
        """f alone: what the evaluation scores (no latent to switch off)."""
        return self.layers(x)[0]

    def loss_terms(self, x, generator=None, epoch=None):
        c = self.config
        posteriors = self.encode(x)
        out = self.decode(
            {
                name: reparameterise(mu, logvar, generator)
                for name, (mu, logvar) in posteriors.items()
            }
        )
        f_logits = out["foreground"]
        if epoch is not None and epoch <= c["bg_warmup_epochs"]:  # background first
            f_logits = torch.full_like(f_logits, -30.0)
        ll = noisy_or_log_likelihood(f_logits, out["background"], x, c["fg_grad_floor"]).mean()
        kl_fg = gaussian_kl(*posteriors["z_fg"]).mean()
        mu_bg, logvar_bg = posteriors["z_bg"]
        kl_bg_dims = (0.5 * (mu_bg.pow(2) + logvar_bg.exp() - 1 - logvar_bg)).mean(0)
        fg_pixels = torch.sigmoid(f_logits).flatten(1).sum(1).mean()
        loss = (
            -ll
            + c["fg_kl_weight"] * kl_fg
            + kl_bg_dims.clamp_min(c["bg_free_bits"]).sum()  # free bits per dimension
            + c["fg_pixel_penalty"] * fg_pixels
        )
        return {
            "loss": loss,
            "ll": ll,
            "kl_fg": kl_fg,
            "kl_bg": kl_bg_dims.sum(),
            "fg_pixels": fg_pixels,
        }
