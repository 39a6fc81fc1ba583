"""Inference for an image: the foreground's posterior refined on the image's own objective,
and the scored output, each place's posterior probability of a cell times its template."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fgbg.models.base import reparameterise
from fgbg.models.layered.foreground import TEMPLATE_SCALE, template_window
from fgbg.models.layered.gaussian import Additive

REFINE_LR = 0.05  # Adam's step size on the posteriors' means and log-variances
RATE_FLOOR = 1e-4  # place rates are read within [RATE_FLOOR, 1 - RATE_FLOOR]
RATE_FIT_IMAGES = 250  # training images the readout is fitted on (binary images)
INTENSITY_FIT_IMAGES = 1000  # on intensities: a template pixel's estimate averages over the
# images where its cell is present, under noise on every pixel (at 250, dim cells' refitted
# templates ranked them below the ceiling: docs/studies/intensity-05-readout-em.md)
RATE_FIT_ITERATIONS = 100  # EM iterations (the rates move by < 1e-4 well before)
READOUT_SWEEPS = 3  # sequential updates of every place's presence (`presences`)
TEMPLATE_ROUNDS = 10  # EM rounds of the rates and templates (`fit_readout`)
MIN_GAIN = 0.1  # intensities: nats per image a place's cells must add to the images'
# likelihood for the place to be kept (`select_places`)
TEMPLATE_PSEUDO = 1.0  # pseudo-images at the old template in each template update
TEMPLATE_FLOOR = 1e-4  # refitted templates are kept within [TEMPLATE_FLOOR, 1 - it]
USED_RATE = 0.01  # a place is used when its rate is at least this
CO_OCCURRING = 0.5  # intensities: neighbours whose presences correlate above this draw one
# cell (`merge_co_occurring`)
CONTAINED = 0.9  # share of a used place's shape inside a used neighbour's that drops it


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
                    {n: reparameterise(m, lv, generator) for n, (m, lv) in current.items()},
                    spread=True,
                )
                loss = model.objective(x, out, current)
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


class PlaceEvidence:
    """`evidence(log_presence, colour=None, undrawn=None)` for the images x (N, 1, H, W) at
    the posterior means `means`: (N, places), for each place p, with the other places
    present as `log_presence` says (log s_q, (N, 1, places)), log p(x | s_p = 1) - log p(x |
    s_p = 0), where s_p = 1 paints p's template at full strength and s_p = 0 nothing there:
    the evidence, in nats, for a cell at p.
    With `colour` (0-3, `colour_classes`), only that class's columns; with `undrawn`, the
    caller's `Foreground.undrawn(log_presence)`. Only p's window changes, so the difference
    is taken over it alone, and over the image's own pixels (not the padding). The windows
    that the presences and templates do not change (the image's, its own pixels', the
    background's) are cut once, per colour class too: the readout's fit reads each batch
    in every pass as the templates move."""

    def __init__(self, model, x, means):
        self.model = model
        self.inside = _windows(model, model.padding.pad(torch.ones_like(x)))  # own pixels
        self.x = _windows(model, model.padding.pad(x))
        self.b_full = model.background.logits(means["z_bg"])  # the padded image's
        self.b_logits = _windows(model, self.b_full)
        self.background = model.composition.background_term(self.b_logits)
        self.classes = [m.to(x.device) for m in colour_classes(model.foreground.grid)]
        constants = (self.background, self.x, self.inside)
        self.by_colour = [tuple(c[..., m] for c in constants) for m in self.classes]

    def __call__(self, log_presence, colour=None, undrawn=None):
        fg, model = self.model.foreground, self.model
        log_not_st = fg.undrawn(log_presence) if undrawn is None else undrawn
        log_not_t = fg.undrawn(fg.templates.new_zeros(1, 1, 1))  # log s_p = 0: full strength
        log_not_f = fg.combine(log_not_st)
        if colour is None:
            others = _windows(model, log_not_f) - log_not_st  # without p's own term
            b, x_p, own = self.background, self.x, self.inside
        else:
            members = self.classes[colour]
            others = _windows(model, log_not_f, colour) - log_not_st[..., members]
            log_not_t = log_not_t[..., members]
            b, x_p, own = self.by_colour[colour]

        def score(log_not_f_p):  # per pixel, log p(x | f, b)
            return model.composition.pixel_log_likelihood(log_not_f_p, b, x_p)

        return (own * (score(others + log_not_t) - score(others))).sum(1)


def colour_classes(grid):
    """Four boolean masks (places,) by the parity of a place's row and column on the patch
    grid: a template reaches half a patch beyond its own, so no two places of a class share
    a pixel, and a class's presences can be updated at once."""
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    colour = (2 * (rows % 2) + cols % 2).flatten()
    return [colour == c for c in range(4)]


def presences(model, x, means, rate, evidence=None, final_evidence=True):
    """(log P (N, 1, places), evidence (N, places)): each place's probability of a cell
    given the image and the other places, P_p = sigmoid(logit r_p + e_p), with e_p
    (`PlaceEvidence`, or `evidence`, that of x and means, when given) weighed
    against the other places as the readout itself scores them: from the gates decoded at
    `means`, READOUT_SWEEPS sweeps of sequential updates (one colour class at a time,
    `colour_classes`), a mean-field fixed point of a binary presence per place under the
    rates `rate` (`final_evidence` False: the evidence is not computed, None). Against the
    gates, two places whose templates both draw one cell each explain it for the other, and
    both score low; here the first to be updated gives it to the other
    (docs/studies/readout-02-mean-field.md)."""
    if evidence is None:
        evidence = PlaceEvidence(model, x, means)
    logit_rate = torch.logit(rate.clamp(RATE_FLOOR, 1 - RATE_FLOOR))
    logit_rate = logit_rate.masked_fill(rate == 0, -math.inf)  # a place turned off
    fg = model.foreground
    log_p = gate_presence(model, means)
    undrawn = fg.undrawn(log_p)  # updated with log_p, a class at a time
    for _ in range(READOUT_SWEEPS):
        for colour, members in enumerate(evidence.classes):
            update = F.logsigmoid(logit_rate[members] + evidence(log_p, colour, undrawn))
            log_p = log_p.clone()
            log_p[..., members] = update.unsqueeze(1)
            undrawn[..., members] = fg.undrawn(log_p[..., members], members)
    return log_p, evidence(log_p, undrawn=undrawn) if final_evidence else None


def presence_foreground(model, x, means):
    """The scored foreground (N, 1, H, W) at the padded size: f = 1 - prod_p (1 - P_p t_p),
    with P_p the probability of a cell at p given the image (`presences`) under the place's
    rate r_p (`fit_readout`). The gates at the posterior means say yes or no; P_p says
    how sure the objective is, so an ambiguous window scores in between."""
    log_p, _ = presences(model, x, means, model.foreground.place_rate, final_evidence=False)
    fg = model.foreground
    return -torch.expm1(fg.fold(log_p, fg.log_coverage())[1])


def fit_readout(model, images):
    """What the readout fits after training with the weights of the networks fixed, by EM
    on the first RATE_FIT_IMAGES training images (N, 1, H, W) at their refined posterior
    means; on intensities on INTENSITY_FIT_IMAGES at the encoder's means (the presences
    start from the gates there and 3 sweeps move them; refined, 30 steps an image, they
    gave the same validation numbers at twice the fit's time):

    - each place's rate r_p, the prior probability of a cell there (`em_rates`), first on
      the evidence against the gates; each fit maximises the images' marginal likelihood of
      a binary presence per place, so the readout's P_p is a calibrated probability where
      the evidence is. (The mean gate in training is not: a cell under an active disk that
      the model leaves undrawn in training pulls its place's gate mean, and with it every
      P_p there, below the cells' rate.)
    - on intensities, the places kept (`select_places`); a place turned off has rate 0.
    - TEMPLATE_ROUNDS rounds of EM in which one pass of the presences (`presences`) gives
      the rates, every place's template (`refit_templates`) and, on intensities, the
      composition's levels; halfway, one place per cell (`drop_contained`; on intensities
      `merge_co_occurring`). Then the rates at the last templates. The templates were
      learned under the pixel penalty, which trims them where a disk explains their pixels
      as well; refitted, they are the cells' shapes as the images show them
      (docs/studies/readout-04-template-refit.md, intensity-05-readout-em.md)."""
    model.eval()
    on_intensities = intensities(model)
    count = INTENSITY_FIT_IMAGES if on_intensities else RATE_FIT_IMAGES
    batches = []  # (x, means, PlaceEvidence)
    for x in images[:count].float().split(50):
        posteriors = model.encode(x) if on_intensities else refine(model, x, model.encode(x))
        means = {n: m for n, (m, _) in posteriors.items()}
        with torch.no_grad():
            batches.append((x, means, PlaceEvidence(model, x, means)))

    def evidence(rate=None):  # at the gates (None) or at the presences under `rate`
        if rate is None:
            return torch.cat([e(gate_presence(model, means)) for _x, means, e in batches])
        return torch.cat([presences(model, x, means, rate, e)[1] for x, means, e in batches])

    with torch.no_grad():
        rate = em_rates(evidence())
        if on_intensities:
            at_rate = evidence(rate)
            rate = em_rates(at_rate, off=~select_places(at_rate, rate))
        for round_ in range(TEMPLATE_ROUNDS):
            rate = em_rates(refit_templates(model, batches, rate), off=rate == 0)
            if round_ == TEMPLATE_ROUNDS // 2:
                if on_intensities:
                    rate[merge_co_occurring(model, batches, rate)] = 0.0
                else:
                    drop_contained(model, rate >= USED_RATE)
        rate = em_rates(evidence(rate), off=rate == 0)
    model.foreground.place_rate.copy_(rate)


def intensities(model) -> bool:
    """Whether the model reads intensity images (the additive composition): where the
    readout's fit keeps places by their worth, merges co-occurring ones and refits the
    composition's levels with the templates."""
    return isinstance(model.composition, Additive)


def select_places(evidence, rate):
    """(places,) bool: the places whose cells are worth MIN_GAIN nats per image, the mean
    over the images of log(r e^e + 1 - r), the log-likelihood of a binary presence at rate
    r against no cell there, for the evidence e (N, places). On intensities a place where
    no cell ever is still finds a little evidence in the noise and in what the background
    misses (0.04-0.08 nats per image in the validation runs, dim cells 0.9-1.4), and at the
    rates EM gives it (0.05-0.1) it leaks its template's light over the images."""
    r = rate.clamp(RATE_FLOOR, 1 - RATE_FLOOR)
    gain = torch.logaddexp(r.log() + evidence, torch.log1p(-r)).mean(0)
    return gain >= MIN_GAIN


def merge_co_occurring(model, batches, rate) -> list[int]:
    """The places to turn off so that one place draws each cell, on intensities: of two
    neighbouring used places (rate > 0, windows overlapping) whose presences at the
    readout's (under `rate`, over `batches`) correlate above CO_OCCURRING over the images,
    the one with the smaller shape (pixels t > 0.5), pairs taken from the most correlated.
    Two places that learned the halves of one cell are present together; each half's
    evidence is half the cell's, and neither refits to the whole while the other draws
    its half. Turned off, the other's template grows to the cell in the next rounds."""
    grid = model.foreground.grid
    with torch.no_grad():
        present = torch.cat([presences(model, x, means, rate, e)[0][:, 0].exp()
                             for x, means, e in batches])  # fmt: skip
    used = torch.nonzero(rate > 0).flatten().tolist()
    if len(used) < 2:
        return []
    corr = torch.corrcoef(present[:, used].T)
    size = (model.foreground.shapes() > 0.5).sum(0)
    pairs = sorted(
        ((corr[i, j].item(), p, q) for i, p in enumerate(used) for j, q in enumerate(used)
         if p < q and corr[i, j] > CO_OCCURRING
         and abs(p // grid[1] - q // grid[1]) <= 1 and abs(p % grid[1] - q % grid[1]) <= 1),
        reverse=True,
    )  # fmt: skip
    dropped = []
    for _c, p, q in pairs:
        if p not in dropped and q not in dropped:
            dropped.append(p if size[p] < size[q] else q)
    return dropped


def _windows(model, t, colour=None):
    """(N, 1, H, W) at the padded size -> (N, window^2, places): each place's window, zeros
    outside the padded image; with `colour` (0-3, `colour_classes`), that class's places
    alone, cut from every other row and column of places."""
    k = model.foreground.kernel
    if colour is None:
        return F.unfold(t, template_window(k), padding=k // 2, stride=k)
    row, col = divmod(colour, 2)
    padded = F.pad(t, (k // 2,) * 4)[..., row * k :, col * k :]
    return F.unfold(padded, template_window(k), stride=2 * k)


def refit_templates(model, batches, rate):
    """One EM update of every place's template at the readout's presences under `rate`,
    over `batches` [(x, means, their PlaceEvidence)]: t_p[i] <- (moved + TEMPLATE_PSEUDO
    t_p[i]) / (weight + TEMPLATE_PSEUDO), the composition's `template_moments` summed over
    the images on the image's own pixels (binary images: the posterior that p's cell turned
    pixel i on, over P_p; intensities: least squares). A cell always on under a disk that
    is on as often refits towards 1, a pixel that the disk alone turns on towards 0. On
    intensities the same pass refits the composition's levels (`level_moments`). Returns
    the evidence (N, places) at the same presences (and the templates before the update),
    from which the round's rates are fitted: one E-step, two or three M-steps."""
    fg, composition = model.foreground, model.composition
    t = fg.shapes()
    moved, weight = torch.zeros_like(t), torch.zeros_like(t)
    evidences, levels = [], []
    for x, means, evidence in batches:
        log_p, e = presences(model, x, means, rate, evidence)
        evidences.append(e)
        log_not_st, log_not_f = fg.fold(log_p)
        not_others = (_windows(model, log_not_f) - log_not_st).exp()  # 1 - f without p
        m, w = composition.template_moments(evidence.x, log_p.exp(), t, not_others,
                                            evidence.b_logits)  # fmt: skip
        moved += (evidence.inside * m).sum(0)
        weight += (evidence.inside * w).sum(0)
        if intensities(model):
            layers = _layers(model, log_p, log_not_st, log_not_f, evidence)
            levels.append(composition.level_moments(x, *layers))
    if levels:
        composition.fit_levels(*(sum(terms) for terms in zip(*levels, strict=True)))
    new = (moved + TEMPLATE_PSEUDO * t) / (weight + TEMPLATE_PSEUDO)
    if intensities(model):
        new = composition.finish_templates(new, weight + TEMPLATE_PSEUDO, t, rate > 0)
    new = new.clamp(TEMPLATE_FLOOR, 1 - TEMPLATE_FLOOR)
    fg.templates.data.copy_((torch.logit(new) / TEMPLATE_SCALE).unsqueeze(0))
    return torch.cat(evidences)


def _layers(model, log_p, log_not_st, log_not_f, evidence):
    """(f, Var f, b), (N, 1, H, W) each on the image's own pixels: the foreground at
    presences log P (N, 1, places) from their fold (`log_not_st`, `log_not_f`), its
    variance over presences drawn at them, and the background of `evidence`."""
    fg, crop = model.foreground, model.padding.crop
    spread = fg.spread(log_p, log_not_st, log_not_f)
    return crop(-torch.expm1(log_not_f)), crop(spread), crop(torch.sigmoid(evidence.b_full))


def drop_contained(model, used) -> list[int]:
    """Turn off (template at the floor) every used place (`used`, (places,) bool) whose
    shape, its pixels t > 0.5 on the image's own pixels, lies within a used neighbour's
    shape of at least its size (a share CONTAINED of its pixels; of two equal shapes the
    lower index stays). Two places that draw one cell are independent in the model, so
    they cannot say that they co-occur: one place per cell can. Returns the places
    dropped."""
    fg = model.foreground
    t = fg.shapes()
    places = t.shape[1]
    # each place's template alone, painted at its place: (places, H x W)
    alone = t.T.unsqueeze(2) * torch.eye(places, dtype=t.dtype).unsqueeze(1)
    painted = fg.combine(alone)  # the fold that sums the places' windows into the image
    own = model.padding.pad(torch.ones(1, 1, model.height, model.width, dtype=t.dtype)) > 0
    shapes = ((painted > 0.5) & own).flatten(1) & used.unsqueeze(1)
    sizes = shapes.sum(1)
    shared = shapes.float() @ shapes.float().T
    dropped = []
    for p in range(places):
        for q in range(places):
            if sizes[p] == 0 or q == p or q in dropped or sizes[q] < sizes[p]:
                continue
            if shared[p, q] >= CONTAINED * sizes[p] and (sizes[q] > sizes[p] or q < p):
                dropped.append(p)
                break
    floor = torch.logit(torch.tensor(TEMPLATE_FLOOR)) / TEMPLATE_SCALE
    fg.templates.data[0, :, dropped] = floor
    return dropped


@torch.no_grad()
def em_rates(evidence, off=None):
    """(places,) the rates r maximising sum_n log(r e^(e_n) + 1 - r) per place, for the
    evidence e (N, places) in nats: from 0.5, r <- mean_n sigmoid(logit r + e_n); 0 for
    the places turned off (`off`, (places,) bool)."""
    rate = torch.full_like(evidence[0], 0.5)
    for _ in range(RATE_FIT_ITERATIONS):
        logit = torch.logit(rate.clamp(RATE_FLOOR, 1 - RATE_FLOOR))
        rate = torch.sigmoid(logit + evidence).mean(0)
    return rate if off is None else rate.masked_fill(off, 0.0)
