"""The noisy-OR composition of two layers, in log space: p(x = 1) = 1 - (1 - f)(1 - b)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def log1m_exp(log_p):
    """log(1 - p) from log p < 0, accurate for p near 0 (expm1) and near 1 (log1p)."""
    return torch.where(log_p > -0.6931, torch.log(-torch.expm1(log_p)), torch.log1p(-log_p.exp()))


def logit_of_product(log_p):
    """The logit of p from log p < 0 (a product of probabilities, summed as logs)."""
    return log_p - torch.log(-torch.expm1(log_p.clamp_max(-1e-6)))


def noisy_or_log_likelihood(f_logits, b_logits, x):
    """Per-image log p(x) under p = 1 - (1 - f)(1 - b), from the layers' logits: with
    a = -log(1 - p) = softplus(f_logits) + softplus(b_logits), log p = log(1 - exp(-a))."""
    a = (F.softplus(f_logits) + F.softplus(b_logits)).clamp_min(1e-7)
    return (x * log1m_exp(-a) - (1 - x) * a).flatten(1).sum(dim=1)


class NoisyOr(nn.Module):
    """The composition for binary images (no parameters)."""

    MASK_START = 0.0  # the background's mask starts half open (`Background`)

    def background_term(self, b_logits):
        """What `pixel_log_likelihood` reads of the background: -log(1 - b)."""
        return F.softplus(b_logits)

    def pixel_log_likelihood(self, log_not_f, background, x):
        """log p(x) per pixel, from log(1 - f) and the `background_term`."""
        log_not_p = (log_not_f - background).clamp_max(-1e-7)
        return x * log1m_exp(log_not_p) + (1 - x) * log_not_p

    def log_likelihood(self, f_logits, b_logits, x, spread=None):
        """Per-image log p(x) from the layers' logits (`spread`: intensities only)."""
        return noisy_or_log_likelihood(f_logits, b_logits, x)

    def light(self, f):
        """What the pixel penalty charges: f itself."""
        return f

    def template_moments(self, x, present, t, not_others, b_logits):
        """A template's EM update's terms per image, template pixel and place (`moved`,
        `weight`), from the pixels x, the places' presences P (N, 1, places), their
        templates t, the other places' 1 - f (`not_others`) and the background's logits:
        the posterior that p's cell turned the pixel on (`fired`), and P."""
        quiet = not_others * (1 - torch.sigmoid(b_logits))  # no other cause turns it on
        drawn = present * t
        return self.fired(x, drawn, quiet), present.expand_as(drawn)

    def fired(self, x, drawn, quiet):
        """Per pixel, the posterior probability that one cause, which turns the pixel on
        with probability `drawn`, did, given the pixel x and the probability `quiet` that no
        other cause turns it on: x drawn / (1 - (1 - drawn) quiet). The E-step by which the
        readout refits the templates (`inference.refit_templates`)."""
        return x * drawn / (1 - (1 - drawn) * quiet).clamp_min(1e-12)


def follow(buffer, batch_value):
    """A moving average over training batches, in place (momentum 0.99): how the
    empirical-Bayes quantities (the place prior, the place rates) follow their posteriors
    without a gradient. Returns `buffer`."""
    return buffer.mul_(0.99).add_(0.01 * batch_value)
