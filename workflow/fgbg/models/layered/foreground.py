"""The foreground layer: a latent per cell-sized patch, a gate per patch, and a learned
template per place; f = 1 - prod_p (1 - g_p t_p)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fgbg.layers import PatchConv2d, soft_opening
from fgbg.losses import gaussian_kl
from fgbg.models.layered.noisy_or import follow, log1m_exp, logit_of_product

OPENING_SHARPNESS = 30.0  # a 6 x 6 window with one off pixel scores 0.17, with two 0
PLACE_PRIOR_MIN_VAR = 0.01  # the place prior's variance floor
TEMPLATE_SCALE = 10.0  # template logits = this x the parameters: Adam moves them 10 x faster
# than the networks' weights, so the templates are learned within the first epochs


def template_window(k: int) -> int:
    """The side of a place's template: its k x k patch and half a cell around it."""
    return k + 2 * (k // 2)


class Foreground(nn.Module):
    """Encoder, place prior and painter of the foreground layer.

    The encoder sees the image and its soft opening by a k x k square (the pixels covered
    by a hole-free cell-sized window) through a patch convolution (kernel = stride = k),
    then a `patch_context`-square convolution over the patch grid; it gives a Gaussian
    posterior over `patch_latent` dimensions per patch. The prior per place and dimension
    follows the posteriors' moments (`kl`). The decoder maps the latent map to one gate
    logit per patch; each place p paints its own template t_p (a `template_window` square
    centred on the patch) scaled by its gate, and the places combine by a noisy-OR."""

    def __init__(self, config: dict, height: int, width: int):
        super().__init__()
        k, ch, d, ctx = (config[key] for key in ("fg_kernel", "patch_channels", "patch_latent",
                                                 "patch_context"))  # fmt: skip
        self.kernel, self.latent, self.size = k, d, (height, width)
        # on intensities only u t_p is identified (u the cells' brightness): t_p is a shape,
        # scaled so that its brightest pixel is 1 (docs/models.md, "Intensity images")
        self.shapes_only = config.get("likelihood") == "gaussian"
        self.grid = (height // k, width // k)
        places = self.grid[0] * self.grid[1]
        self.encoder = nn.Sequential(
            PatchConv2d(2, ch, k),  # channels: the image, its opening
            nn.ReLU(),
            nn.Conv2d(ch, ch, ctx, padding=ctx // 2),
            nn.ReLU(),
            nn.Conv2d(ch, 2 * d, 1),
        )
        gate = nn.Conv2d(ch, 1, 1)  # initialised first: the order the weights are drawn in
        self.decoder = nn.Sequential(
            nn.Conv2d(d, ch, ctx, padding=ctx // 2), nn.ReLU(), nn.Conv2d(ch, ch, 1), nn.ReLU(),
            gate,
        )  # fmt: skip
        self.templates = nn.Parameter(torch.zeros(1, template_window(k) ** 2, places))
        self.register_buffer("prior_mean", torch.zeros(d * places))
        self.register_buffer("prior_var", torch.ones(d * places))
        self.register_buffer("place_rate", torch.full((places,), 0.5))
        with torch.no_grad():
            self.decoder[-1].bias.fill_(0.0)
            if config["fg_blind_epochs"]:  # the image's weights start at 0 (see encode)
                self.encoder[0].weight[:, 0].zero_()

    def encode(self, x, blind: bool):
        """(mu, logvar), each (N, patch_latent x places). `blind`: the image channel is
        zeroed and the encoder sees the opening alone."""
        opening = soft_opening(x, self.kernel, OPENING_SHARPNESS)
        out = self.encoder(torch.cat([torch.zeros_like(x) if blind else x, opening], dim=1))
        return out.flatten(1).view(len(x), 2, -1).unbind(1)

    def kl(self, mu, logvar, learn_prior: bool):
        """Per image, KL(q(z_fg) || p(z_fg)), p a Gaussian per place and latent dimension.
        With `learn_prior` its mean and variance first follow the moments of q over the batch
        (a moving average; variance floor PLACE_PRIOR_MIN_VAR): the moment-matched,
        empirical-Bayes prior, so that a place where cells are rare is dear to use."""
        if learn_prior:
            with torch.no_grad():
                mean = follow(self.prior_mean, mu.mean(0))
                follow(self.prior_var, (logvar.exp() + (mu - mean).pow(2)).mean(0))
                self.prior_var.clamp_(min=PLACE_PRIOR_MIN_VAR)
        return gaussian_kl(mu, logvar, (self.prior_mean, self.prior_var))

    def gate_logits(self, z):
        """The gates' logits (N, 1, h, w) for z (N, patch_latent x places)."""
        return self.decoder(z.view(-1, self.latent, *self.grid))

    def log_templates(self):
        """log t_p (1, window^2, places); on intensities each shape's brightest pixel is 1."""
        log_t = F.logsigmoid(TEMPLATE_SCALE * self.templates)
        if self.shapes_only:
            log_t = log_t - log_t.amax(dim=1, keepdim=True)
        return log_t

    def shapes(self):
        """t_p (window^2, places), as `log_templates` reads them."""
        t = torch.sigmoid(TEMPLATE_SCALE * self.templates)[0]
        return t / t.amax(dim=0) if self.shapes_only else t

    def log_coverage(self):
        """log c_p (1, window^2, places), how much of each pixel p's cell covers, which the
        scored output paints (`inference.presence_foreground`): on binary images t_p; on
        intensities t_p over its plateau's mean (its pixels at least half its brightest),
        at most 1, so that a cell's own pixels score its probability even where a shape
        refitted under noise sits below its brightest pixel."""
        log_t = self.log_templates()
        if not self.shapes_only:
            return log_t
        plateau = log_t >= -math.log(2)
        mean = (log_t.exp() * plateau).sum(1, keepdim=True) / plateau.sum(1, keepdim=True)
        return (log_t - mean.log()).clamp_max(0.0)

    def undrawn(self, log_presence, places=None, log_t=None):
        """log(1 - s_p t_p) per place and template pixel (N, window^2, places), from log s_p
        (N, 1 or window^2, places); with a boolean mask `places`, for those places alone
        (log_presence's columns for them); with `log_t`, those templates, not training's."""
        log_t = self.log_templates() if log_t is None else log_t
        if places is not None:
            log_t = log_t[..., places]
        return log1m_exp((log_presence + log_t).clamp_max(-1e-6))

    def combine(self, log_not_st):
        """log(1 - f) (N, 1, H, W): the sum of log(1 - s_p t_p) over the places covering
        each pixel."""
        k = self.kernel
        return F.fold(log_not_st, self.size, template_window(k), padding=k // 2, stride=k)

    def fold(self, log_presence, log_t=None):
        """(log(1 - s_p t_p) (`undrawn`), log(1 - f) (`combine`)) from log s_p."""
        log_not_st = self.undrawn(log_presence, log_t=log_t)
        return log_not_st, self.combine(log_not_st)

    def paint(self, gate_logits):
        """f's logits (N, 1, H, W) for the gates' logits."""
        return -logit_of_product(self.fold(F.logsigmoid(gate_logits).flatten(2))[1])

    def paint_spread(self, gate_logits):
        """(f's logits, Var(f)), (N, 1, H, W) each, for the gates' logits (`spread`)."""
        log_g = F.logsigmoid(gate_logits).flatten(2)
        log_not_gt, log_not_f = self.fold(log_g)
        spread = self.spread(log_g, log_not_gt, log_not_f)  # first: the gradients' order
        return -logit_of_product(log_not_f), spread

    def spread(self, log_presence, log_not_st, log_not_f):
        """Var(f) (N, 1, H, W), f's variance when each place's presence s_p is drawn, 0 or
        1, at its probability g_p, from log g_p and their `fold` (log_not_st, log_not_f).
        With f = 1 - prod_p (1 - s_p t_p) and independent draws, E[(1 - f)^2] / (E[1 -
        f])^2 = prod_p (1 + g_p (1 - g_p) t_p^2 / (1 - g_p t_p)^2), so Var(f) = (1 - f)^2
        (that product - 1), its log summed over the places covering each pixel like
        log(1 - f)."""
        g = log_presence.exp()
        ratio = (g * (1 - g)) * (2 * self.log_templates() - 2 * log_not_st).exp()
        return (2 * log_not_f).exp() * torch.expm1(self.combine(torch.log1p(ratio)))
