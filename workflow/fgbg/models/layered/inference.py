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
READOUT_SWEEPS = 3  # sequential updates of every place's presence (`presences`)
RATE_REFITS = 5  # rounds of rates fitted at the readout's own presences (`fit_place_rates`)


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


def gate_presence(model, means):
    """log s_p (N, 1, places): the gates decoded at the posterior means `means`."""
    return F.logsigmoid(model.foreground.gate_logits(means["z_fg"])).flatten(2)


def place_evidence(model, x, means):
    """A function `evidence(log_presence)` for the images x (N, 1, H, W) at the posterior
    means `means`: (N, places), for each place p, with the other places present as
    `log_presence` says (log s_q, (N, 1, places)), log p(x | s_p = 1) - log p(x | s_p = 0) -
    fg_pixel_penalty (sum f | s_p = 1 - sum f | s_p = 0) (on intensities the light u f in
    place of f), where s_p = 1 paints p's template at full strength and s_p = 0 nothing
    there: the objective's own evidence, in nats, for a cell at p. Only p's window changes,
    so the difference is taken over it alone, and over the image's own pixels (not the
    padding). What does not depend on the presences (the background, the image's windows,
    the full-strength templates) is computed here, once per batch."""
    fg = model.foreground
    k = fg.kernel
    window, pad = template_window(k), k // 2

    def windows(t):  # (N, 1, H, W) -> (N, window^2, places), zeros outside the image
        return F.unfold(t, window, padding=pad, stride=k)

    inside = windows(model.padding.pad(torch.ones_like(x)))  # the image's own pixels
    x_windows = windows(model.padding.pad(x))
    b_logits = windows(model.background.logits(means["z_bg"]))
    log_not_t = fg.fold(fg.templates.new_zeros(1, 1, 1))[0]  # log s_p = 0: full strength
    penalty = model.config["fg_pixel_penalty"]

    def score(log_not_f_p):  # per pixel, log p(x | f, b) - penalty x f
        ll = model.composition.pixel_log_likelihood(log_not_f_p, b_logits, x_windows)
        return ll - penalty * model.composition.light(-torch.expm1(log_not_f_p))

    def evidence(log_presence):
        log_not_st, log_not_f = fg.fold(log_presence)
        log_not_others = windows(log_not_f) - log_not_st  # log(1 - f) without p's term
        present = score(log_not_others + log_not_t)
        return (inside * (present - score(log_not_others))).sum(1)

    return evidence


def colour_classes(grid):
    """Four boolean masks (places,) by the parity of a place's row and column on the patch
    grid: a template reaches half a patch beyond its own, so no two places of a class share
    a pixel, and a class's presences can be updated at once."""
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    colour = (2 * (rows % 2) + cols % 2).flatten()
    return [colour == c for c in range(4)]


def presences(model, x, means, rate, evidence=None):
    """(log P (N, 1, places), evidence (N, places)): each place's probability of a cell
    given the image and the other places, P_p = sigmoid(logit r_p + e_p), with e_p
    (`place_evidence`, or its function `evidence` for x and means when given) weighed
    against the other places as the readout itself scores them: from the gates decoded at
    `means`, READOUT_SWEEPS sweeps of sequential updates (one colour class at a time,
    `colour_classes`), a mean-field fixed point of a binary presence per place under the
    rates `rate`. Against the gates, two places whose templates both draw one cell each
    explain it for the other, and both score low; here the first to be updated gives it to
    the other (docs/studies/readout-02-mean-field.md)."""
    if evidence is None:
        evidence = place_evidence(model, x, means)
    logit_rate = torch.logit(rate.clamp(RATE_FLOOR, 1 - RATE_FLOOR))
    log_p = gate_presence(model, means)
    classes = [members.to(x.device) for members in colour_classes(model.foreground.grid)]
    for _ in range(READOUT_SWEEPS):
        for members in classes:
            update = F.logsigmoid(logit_rate + evidence(log_p))
            log_p = torch.where(members, update.unsqueeze(1), log_p)
    return log_p, evidence(log_p)


def presence_foreground(model, x, means):
    """The scored foreground (N, 1, H, W) at the padded size: f = 1 - prod_p (1 - P_p t_p),
    with P_p the probability of a cell at p given the image (`presences`) under the place's
    rate r_p (`fit_place_rates`). The gates at the posterior means say yes or no; P_p says
    how sure the objective is, so an ambiguous window scores in between."""
    log_p, _ = presences(model, x, means, model.foreground.place_rate)
    return -torch.expm1(model.foreground.fold(log_p)[1])


def fit_place_rates(model, images):
    """Each place's rate r_p, the prior probability of a cell there, fitted by EM with the
    weights fixed, on the first RATE_FIT_IMAGES training images (N, 1, H, W) at their
    refined posterior means: first on the evidence against the gates, then RATE_REFITS times
    on the evidence at the readout's own presences under the rates so far (`presences`).
    Each fit (`em_rates`) maximises the images' marginal likelihood of a binary presence
    per place, so the readout's P_p is a calibrated probability where the evidence is.
    (The mean gate in training is not: a cell under an active disk that the model leaves
    undrawn in training pulls its place's gate mean, and with it every P_p there, below
    the cells' rate.)"""
    model.eval()
    batches = []
    for x in images[:RATE_FIT_IMAGES].float().split(50):
        posteriors = refine(model, x, model.encode(x))
        means = {n: m for n, (m, _) in posteriors.items()}
        with torch.no_grad():
            batches.append((x, means, place_evidence(model, x, means)))
    with torch.no_grad():
        rate = em_rates(torch.cat([e(gate_presence(model, means)) for _, means, e in batches]))
        for _ in range(RATE_REFITS):
            rate = em_rates(
                torch.cat([presences(model, x, means, rate, e)[1] for x, means, e in batches])
            )
    model.foreground.place_rate.copy_(rate)


@torch.no_grad()
def em_rates(evidence):
    """(places,) the rates r maximising sum_n log(r e^(e_n) + 1 - r) per place, for the
    evidence e (N, places) in nats: from 0.5, r <- mean_n sigmoid(logit r + e_n)."""
    rate = torch.full_like(evidence[0], 0.5)
    for _ in range(RATE_FIT_ITERATIONS):
        logit = torch.logit(rate.clamp(RATE_FLOOR, 1 - RATE_FLOOR))
        rate = torch.sigmoid(logit + evidence).mean(0)
    return rate
