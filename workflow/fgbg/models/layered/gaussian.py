"""The additive composition of two layers for intensity images (binarize off): a pixel is
offset + u f + v b plus Gaussian noise of standard deviation sd, the way the generator
makes it (a cell adds its intensity, an active disk its light, noise is added on top), in
expectation over the places' presences drawn 0 or 1 at their gates (`log_likelihood`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
SCALE = 10.0  # v, the offset and log sd = this x their parameters: Adam moves them 10 x
# faster than the networks' weights, so they settle in the first epoch
U_SCALE = 3.0  # u's: slower, since the foreground's gradients scale with u. At 10 x, in the
# first epoch after the blind ones, while the gates know nothing yet and paint a haze
# everywhere, u fell from 0.1 to 0.03 and 5 of 12 dim-cell starts lost their foreground;
# at 3 x none did, and at 1 x bright cells' u took over 14 epochs to grow
# (docs/studies/intensity-07-cells-brightness-rate.md)
SIGNIFICANT = 3.0  # standard errors above 0 at which the readout keeps a refitted template's
# pixel on intensities (`Additive.finish_templates`)
HEADROOM = 2.0  # standard errors above a refitted shape's plateau at which it is scaled to 1
LEVEL_PRIOR = 1.0  # pixels' weight holding v at its value in the readout's levels fit
START = {"u": 0.1, "v": 1.0, "offset": 0.0, "sd": 1.0}  # a dim foreground: a cell drawn too dim
# beats not drawing it, so u grows to the cells' brightness (from u = 1 the foreground of
# 0.2-bright cells switched off before u could learn, and stayed off)


class Additive(nn.Module):
    """Learned: u and v, the brightness of a full cell and of the full background (softplus,
    so positive), the offset (the noise's mean) and log sd (the noise's level). f and b keep
    their meaning in [0, 1]: how much of a cell, and of the background, covers a pixel."""

    MASK_START = -1.0  # the background's mask starts closed (sigmoid(-8)) and opens where
    # the disks are; half open, its sharp edge held it open over a corner of the disk's
    # square in 9 of 12 dim-cell starts (closed: 1; docs/studies/intensity-06-blind-mask.md)

    def __init__(self):
        super().__init__()

        def softplus_inverse(y):
            return math.log(math.expm1(y))

        start = torch.tensor([softplus_inverse(START["u"]), softplus_inverse(START["v"]),
                              START["offset"], math.log(START["sd"])])  # fmt: skip
        scales = torch.tensor([U_SCALE, SCALE, SCALE, SCALE])
        self.register_buffer("scales", scales, persistent=False)
        self.raw = nn.Parameter(start / scales)

    def values(self):
        """u, v, offset, sd (tensors)."""
        u, v, offset, log_sd = (self.scales * self.raw).unbind()
        return F.softplus(u), F.softplus(v), offset, log_sd.exp()

    def background_term(self, b_logits):
        """What `pixel_log_likelihood` reads of the background: b itself."""
        return torch.sigmoid(b_logits)

    def pixel_log_likelihood(self, log_not_f, background, x):
        """log N(x; offset + u f + v b, sd^2) per pixel, from log(1 - f) and the
        `background_term` b."""
        u, v, offset, sd = self.values()
        mean = offset + u * -torch.expm1(log_not_f) + v * background
        return -0.5 * ((x - mean) / sd).pow(2) - sd.log() - HALF_LOG_2PI

    def light(self, f):
        """What the pixel penalty charges: the foreground's light u f, so that a dimmer
        shape with a brighter u costs the same."""
        return self.values()[0] * f

    def template_moments(self, x, present, t, not_others, b_logits):
        """A template's EM update's terms per image, template pixel and place (`moved`,
        `weight`), as `NoisyOr.template_moments`: with the other places at their presences
        (1 - f_others = `not_others`, c) and p's cell there, a pixel's mean is offset + v b +
        u f_others + u c t, so the least-squares t weighs each image's residual r = x -
        offset - v b - u f_others by P: moved = P c r / u, weight = P c^2."""
        u, v, offset, _sd = self.values()
        residual = x - offset - v * torch.sigmoid(b_logits) - u * (1 - not_others)
        return present * not_others * residual / u, present * not_others.pow(2)

    def level_moments(self, x, f, spread, b):
        """The sums from which `fit_levels` solves for the offset, v and sd, over images x
        (N, 1, H, W) with their foreground f (at the readout's presences), its variance over
        presences drawn at them (`spread`) and their background b, at this u: the normal
        equations of the least squares x - u f ~ offset + v b, and the residual's sum of
        squares, u^2 Var f added."""
        u = self.values()[0].double()
        design = torch.stack([torch.ones_like(b), b]).flatten(1).double()
        y = (x - u * f).flatten().double()
        return design @ design.T, design @ y, y.pow(2).sum() + u**2 * spread.sum(), y.numel()

    @torch.no_grad()
    def fit_levels(self, gram, moments, sum_y2, count):
        """The offset and v by least squares, sd the residual's root mean square (the
        readout's M-step, `inference.refit_templates`; u is set with the templates, by
        `finish_templates`). v is held at its value with the weight of LEVEL_PRIOR pixels
        (nothing beside the millions of a fit where the background varies; where it does
        not, as without disks, v cannot be told from the offset and stays) and kept
        positive."""
        ridge = torch.zeros_like(gram)
        ridge[1, 1] = LEVEL_PRIOR
        held = moments + ridge[:, 1] * self.values()[1].double()
        theta = torch.linalg.solve(gram + ridge, held)
        sd = ((sum_y2 - 2 * theta @ moments + theta @ gram @ theta) / count).sqrt()
        offset, v = theta.float()
        v = v.clamp_min(1e-4)
        self.raw[1:].copy_(
            torch.stack([torch.log(torch.expm1(v)), offset, sd.float().log()]) / SCALE
        )

    @torch.no_grad()
    def finish_templates(self, new, weight, old, used):
        """Templates `new` (window^2, places), refitted in units of u with their least
        squares' `weight`, as the readout keeps them: each pixel kept where it stands
        SIGNIFICANT standard errors (sd / (u sqrt(weight))) above 0, else 0 (under noise on
        every pixel the estimate where no cell is is noise, cut at 0 from below, and would
        draw light around every cell); then each scaled so that its plateau (its pixels at
        least half its brightest, plus HEADROOM standard errors) averages 1, and u by the
        `used` places' mean scale, so u t is unchanged. A shape's pixels are at most 1 (the
        caller cuts them there): with its plateau at 1, half its noisy pixels were cut, a dim
        cell lost 7-10 % of its light and the evidence against an absent one read 0.2-1.0
        nats too high; scaled by its brightest pixel, each place's light was off by that
        pixel's noise (docs/studies/intensity-07-cells-brightness-rate.md). A template with
        no pixel kept keeps its `old` one."""
        u, _v, _offset, sd = self.values()
        error = sd / (u * weight.sqrt())  # each pixel's standard error, in units of u
        new = torch.where(new >= SIGNIFICANT * error, new, 0.0)
        new = torch.where(new.amax(dim=0) > 0, new, old)
        plateau = new >= new.amax(dim=0) / 2
        scale = ((new + HEADROOM * error) * plateau).sum(0) / plateau.sum(0)
        if used.any():
            u = u * scale[used].mean()
            self.raw[0].copy_(torch.log(torch.expm1(u)) / U_SCALE)
        return new / scale

    def log_likelihood(self, f_logits, b_logits, x, spread=None):
        """Per-image log p(x) from the layers' logits; with `spread`, Var(f) over the
        places' presences drawn 0 or 1 at their gates (`Foreground.paint_spread`), its expectation
        over those draws: the mean's variance u^2 Var(f) / (2 sd^2) less per pixel. A gate
        is then a probability of a cell, not a dimmer: half a gate does not paint half a
        cell's light for free."""
        ll = self.pixel_log_likelihood(F.logsigmoid(-f_logits), self.background_term(b_logits), x)
        if spread is not None:
            u, _v, _offset, sd = self.values()
            ll = ll - 0.5 * (u / sd).pow(2) * spread
        return ll.flatten(1).sum(dim=1)
