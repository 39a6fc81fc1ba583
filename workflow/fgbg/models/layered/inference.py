"""Inference for an image: the foreground's posterior refined on the image's own objective,
and the scored output, each place's posterior probability of a cell times its template."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fgbg.models.base import reparameterise
from fgbg.models.layered.foreground import template_window

REFINE_LR = 0.05  # Adam's step size on the posteriors' means and log-variances
RATE_FLOOR = 1e-4  # place rates are read within [RATE_FLOOR, 1 - RATE_FLOOR]
RATE_FIT_IMAGES = 250  # training images the place rates are fitted on
RATE_FIT_ITERATIONS = 100  # EM iterations (the rates move by < 1e-4 well before)


def refine(model, x, posteriors):
    """The posteriors with the foreground's refined by `fg_refine_steps` Adam steps on each
    image's own negative ELBO (one reparameterised sample per step, a fixed noise seed) from
    the encoder's output: semi-amortised inference. The encoder is an amortised guess; the
    decoder knows where cells are, and the steps find what the objective prefers for this
    image. No labels; the weights stay fixed, and so does the background's code (its free
    bits are a batch mean, which would tie an image's answer to the others in its batch)."""
    steps = model.config["fg_refine_steps"]
    if not steps:
        return posteriors
    mu, logvar = (t.detach().clone().requires_grad_() for t in posteriors["z_fg"])
    fixed = {n: (m.detach(), lv.detach()) for n, (m, lv) in posteriors.items() if n != "z_fg"}
    optimiser = torch.optim.Adam([mu, logvar], lr=REFINE_LR)
    generator = torch.Generator(x.device).manual_seed(0)
    training, model.training = model.training, False  # the empirical-Bayes buffers stay
    try:
        with torch.enable_grad():
            for _ in range(steps):
                current = {"z_fg": (mu, logvar), **fixed}
                out = model.decode(
                    {n: reparameterise(m, lv, generator) for n, (m, lv) in current.items()}
                )
                loss = model.objective(x, out["foreground"], out["background"], current)
                # x len(x): each image's step follows its own loss, not the batch mean's
                grads = torch.autograd.grad(loss["loss"] * len(x), [mu, logvar])
                mu.grad, logvar.grad = grads
                optimiser.step()
    finally:
        model.training = training
    return {"z_fg": (mu.detach(), logvar.detach()), **fixed}


def place_evidence(model, x, means):
    """(N, places): for each place p, with the other places' gates as decoded from `means`,
    log p(x | s_p = 1) - log p(x | s_p = 0) - fg_pixel_penalty (sum f | s_p = 1 - sum f |
    s_p = 0) (on intensities the light u f in place of f), where s_p = 1 paints p's template
    at full strength and s_p = 0 nothing there: the objective's own evidence, in nats, for a
    cell at p. Only p's window changes, so the difference is taken over it alone, and over
    the image's own pixels (not the padding)."""
    fg = model.foreground
    k = fg.kernel
    window, pad = template_window(k), k // 2
    log_not_gt, log_not_f = fg.fold(F.logsigmoid(fg.gate_logits(means["z_fg"])).flatten(2))

    def windows(t):  # (N, 1, H, W) -> (N, window^2, places), zeros outside the image
        return F.unfold(t, window, padding=pad, stride=k)

    log_not_others = windows(log_not_f) - log_not_gt  # log(1 - f) without p's term
    inside = windows(model.padding.pad(torch.ones_like(x)))  # the image's own pixels
    x_windows = windows(model.padding.pad(x))
    b_logits = windows(model.background.logits(means["z_bg"]))

    def score(log_not_f_p):  # per pixel, log p(x | f, b) - penalty x f
        ll = model.composition.pixel_log_likelihood(log_not_f_p, b_logits, x_windows)
        light = model.composition.light(-torch.expm1(log_not_f_p))
        return ll - model.config["fg_pixel_penalty"] * light

    log_not_t = fg.fold(fg.templates.new_zeros(1, 1, 1))[0]  # log s_p = 0: full strength
    present = score(log_not_others + log_not_t)
    return (inside * (present - score(log_not_others))).sum(1)


def presence_foreground(model, x, means):
    """The scored foreground (N, 1, H, W) at the padded size: f = 1 - prod_p (1 - P_p t_p), with
    P_p = sigmoid(logit r_p + `place_evidence`_p) the probability of a cell at p given the
    image and the other places (one mean-field update of a binary presence per place) under
    the place's rate r_p (`fit_place_rates`). The gates at the posterior means say yes or
    no; P_p says how sure the objective is, so an ambiguous window scores in between."""
    rate = model.foreground.place_rate.clamp(RATE_FLOOR, 1 - RATE_FLOOR)
    log_p = F.logsigmoid(torch.logit(rate) + place_evidence(model, x, means)).unsqueeze(1)
    return -torch.expm1(model.foreground.fold(log_p)[1])


def fit_place_rates(model, images):
    """Each place's rate r_p, the prior probability of a cell there, fitted by EM with the
    weights fixed: the evidence e_p (`place_evidence`, at the refined posterior means) of
    the first RATE_FIT_IMAGES training images (N, 1, H, W) is computed once, then from 0.5
    r_p <- mean over the images of sigmoid(logit r_p + e_p). Its fixed point is the rate
    that maximises the images' marginal likelihood of a binary presence per place, so the
    readout's P_p is a calibrated probability where the evidence is. (The mean gate in
    training is not: a cell under an active disk that the model leaves undrawn in training
    pulls its place's gate mean, and with it every P_p there, below the cells' rate.)"""
    model.eval()
    evidence = []
    for x in images[:RATE_FIT_IMAGES].float().split(50):
        posteriors = refine(model, x, model.encode(x))
        with torch.no_grad():
            evidence.append(place_evidence(model, x, {n: m for n, (m, _) in posteriors.items()}))
    model.foreground.place_rate.copy_(em_rates(torch.cat(evidence)))


@torch.no_grad()
def em_rates(evidence):
    """(places,) the rates r maximising sum_n log(r e^(e_n) + 1 - r) per place, for the
    evidence e (N, places) in nats: from 0.5, r <- mean_n sigmoid(logit r + e_n)."""
    rate = torch.full_like(evidence[0], 0.5)
    for _ in range(RATE_FIT_ITERATIONS):
        logit = torch.logit(rate.clamp(RATE_FLOOR, 1 - RATE_FLOOR))
        rate = torch.sigmoid(logit + evidence).mean(0)
    return rate
