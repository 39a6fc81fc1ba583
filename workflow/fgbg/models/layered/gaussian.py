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
SCALE = 10.0  # the four numbers = this x their parameters: Adam moves them 10 x faster than
# the networks' weights, so they settle in the first epoch
START = {"u": 0.1, "v": 1.0, "offset": 0.0, "sd": 1.0}  # a dim foreground: a cell drawn too dim
# beats not drawing it, so u grows to the cells' brightness (from u = 1 the foreground of
# 0.2-bright cells switched off before u could learn, and stayed off)


class Additive(nn.Module):
    """Learned: u and v, the brightness of a full cell and of the full background (softplus,
    so positive), the offset (the noise's mean) and log sd (the noise's level). f and b keep
    their meaning in [0, 1]: how much of a cell, and of the background, covers a pixel."""

    def __init__(self):
        super().__init__()

        def softplus_inverse(y):
            return math.log(math.expm1(y))

        start = torch.tensor([softplus_inverse(START["u"]), softplus_inverse(START["v"]),
                              START["offset"], math.log(START["sd"])])  # fmt: skip
        self.raw = nn.Parameter(start / SCALE)

    def values(self):
        """u, v, offset, sd (tensors)."""
        u, v, offset, log_sd = (SCALE * self.raw).unbind()
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
