"""The layered VAE: a foreground layer and a background layer composed the way the data
are made, by a noisy-OR (SPEC section 8).

Generative model (H x W binary image x, cell size c, patch grid H / c x W / c):

    z_fg[i, j] ~ N(m_ij, S_ij) one small latent per c x c patch (a cell-scale latent map); with
                               fg_place_prior (the default) m and S per place follow the
                               posteriors' moments there (empirical Bayes), else N(0, I_d)
    z_bg       ~ N(0, I_e)     one global background latent
    f = sigmoid(F(z_fg))       foreground layer; F: a patch_context x patch_context convolution
                               over the latent map (a cell that straddles patches is drawn by
                               one latent), then a c x c patch painter shared by every patch
                               ("shared"), or ("place") a gate g_p per patch times that
                               patch's own learned template t_p over the patch and half a cell
                               around it, f = 1 - prod_p (1 - g_p t_p)
    b = B(z_bg)                background layer ("shape", the default): a flat level times a
                               sharp-edged mask, b = sigmoid(l) sigmoid(bg_sharpness m), with l
                               and a coarse bg_grid x bg_grid map m (bilinearly upsampled)
                               decoded from z_bg; or sigmoid of the coarse map ("coarse") or of
                               an H x W map ("full")
    x[p] ~ Bernoulli(1 - (1 - f[p]) (1 - b[p]))   a pixel is on when a cell or the
                                                  background turns it on

    loss = -E_q[log p(x | z_fg, z_bg)] + fg_kl_weight KL(z_fg) + KL(z_bg) (above free bits)
           + fg_pixel_penalty * sum_p f[p]        (one reparameterised sample, analytic KL)

The foreground encoder sees x and, with `fg_opening`, the soft morphological opening of x by
a c x c square (`fgbg.layers.soft_opening`): the pixels covered by a hole-free cell-sized
window. The foreground output the evaluation scores is f alone (`foreground_layer`), at the
posterior means; with `fg_refine_steps` the foreground's posterior is first refined by
gradient steps on the image's own negative ELBO (`refine`, semi-amortised inference).

What keeps the layers apart (measured; docs/models.md, "The layered model"):
- the foreground pays per patch it uses (its KL) and per expected pixel it draws
  (fg_pixel_penalty), and paints only locally: a 30-pixel disk costs it about 700 pixels of
  penalty, the background one global latent;
- the background cannot draw a cell: it is flat inside its coarse shape. A coarse map of
  logits ("coarse") draws the cells' mean brightness over cells under a disk (0.92 where the
  disk gives 0.84), and the foreground then dies there; a full-resolution one draws the cells;
- the opening tells the patch encoder, whose 6 x 6 grid does not align with the cells,
  which windows are hole-free: without it the cells under an active disk stay dead. Where the
  background already explains a pixel, d log p / d(f logit) is proportional to f, so a
  foreground that reaches 0 there does not come back.
- the blind start (fg_blind_epochs): the same gradient vanishes for b where f explains a
  disk, and f, which sees each patch, takes a disk before the background's global code has
  learned its on/off state; for the first epochs the foreground encoder sees the opening
  alone, cannot tell whether a disk is on, and leaves the disks to b.
- the one-hole opening (fg_opening_sharpness 30): an active cell with one off pixel (2 % of
  them under an active disk) gets 0.17 where the strict opening gave it 0, so it can rank
  above an inactive cell with two; the place prior (fg_place_prior) lowers the leakage a
  little (docs/models.md, round 12).
- the place painter and refinement (fg_painter place, fg_refine_steps): a shared painter
  draws a cell wherever a window looks like one, and the encoder, which sees windows, cannot
  tell a cell from a chance window beside it; templates per place draw cells only where they
  were learned, and a few gradient steps on the image's own ELBO then decide each one
  (14 of 15 validation runs meet every target, 10 before; each change alone does worse:
  docs/models.md, round 14).
`fg_grad_floor` (a backward-only floor on that gradient), `bg_warmup_epochs` (the
background alone first, SPACE's order), `fg_position` (a learned map over the patch grid),
`fg_presence` (a presence variable per patch, its prior rate per place) and `fg_image: false`
(an encoder that sees the opening alone throughout) are ablations, off by default
(docs/models.md, rounds 8-11).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fgbg.layers import PatchConv2d, PatchConvTranspose2d, soft_opening
from fgbg.losses import gaussian_kl
from fgbg.models.base import reparameterise

RATE_FLOOR = 1e-4  # presence rates are read within [RATE_FLOOR, 1 - RATE_FLOOR]
PLACE_PRIOR_MIN_VAR = 0.01  # fg_place_prior: the per-place prior's variance floor
REFINE_LR = 0.05  # fg_refine_steps: Adam's step size on the posteriors' means and log-variances
TEMPLATE_SCALE = 10.0  # fg_painter place: template logits = this x the parameters, so that
# Adam moves them 10 x faster than the networks' weights (at 1 x, 90 of the 180 expected
# cell pixels were drawn after 34 epochs)


def _floored_rate(logits, floor: float, where):
    """softplus(logits) = -log(1 - sigmoid(logits)); in the backward pass its gradient,
    sigmoid(logits), is raised to at least `floor` on the pixels `where`."""
    rate = F.softplus(logits)
    if floor <= 0:
        return rate
    extra = ((floor - torch.sigmoid(logits)).clamp_min(0) * where).detach()
    return rate + extra * (logits - logits.detach())


def _log1m_exp(log_p):
    """log(1 - p) from log p < 0, accurate for p near 0 (expm1) and near 1 (log1p)."""
    return torch.where(log_p > -0.6931, torch.log(-torch.expm1(log_p)), torch.log1p(-log_p.exp()))


def noisy_or_log_likelihood(f_logits, b_logits, x, f_grad_floor: float = 0.0):
    """Per-image log p(x) under p = 1 - (1 - f)(1 - b), computed from logits: with
    a = -log(1 - p) = softplus(f_logits) + softplus(b_logits), log p = log(1 - exp(-a))."""
    a = (_floored_rate(f_logits, f_grad_floor, x) + F.softplus(b_logits)).clamp_min(1e-7)
    log_p = _log1m_exp(-a)
    return (x * log_p - (1 - x) * a).flatten(1).sum(dim=1)


def _follow(buffer, batch_value):
    """A moving average over training batches, in place (momentum 0.99): how the empirical-
    Bayes priors (place prior, presence rate) follow their posteriors. Returns `buffer`."""
    return buffer.mul_(0.99).add_(0.01 * batch_value)


def _linear_upsampling(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in): the weights of 1-D linear interpolation (align_corners False)."""
    eye = torch.eye(size_in).view(size_in, 1, size_in)
    weights = F.interpolate(eye, size=size_out, mode="linear", align_corners=False)
    return weights.view(size_in, size_out).t().contiguous()


def _template_window(k: int) -> int:
    """fg_painter place: the side of a patch's template, the patch and half a cell around it."""
    return k + 2 * (k // 2)


def _logit_of_product(log_p):
    """The logit of p from log p < 0 (a product of probabilities, summed as logs)."""
    return log_p - torch.log(-torch.expm1(log_p.clamp_max(-1e-6)))


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
            PatchConv2d(int(c["fg_image"]) + int(c["fg_opening"]), ch, k),
            nn.ReLU(),
            nn.Conv2d(ch, ch, ctx, padding=pad),
            nn.ReLU(),
            nn.Conv2d(ch, 2 * d + int(c["fg_presence"]), 1),
        )
        painter = (
            PatchConvTranspose2d(ch, 1, k) if c["fg_painter"] == "shared" else nn.Conv2d(ch, 1, 1)
        )
        self.fg_decoder = nn.Sequential(
            nn.Conv2d(d, ch, ctx, padding=pad),
            nn.ReLU(),
            nn.Conv2d(ch, ch, 1),
            nn.ReLU(),
            painter,
        )
        if c["fg_painter"] == "place":  # one template per patch, over the patch and a margin
            if c["fg_presence"]:
                raise ValueError("fg_painter: place and fg_presence exclude each other")
            places = self.grid[0] * self.grid[1]
            self.fg_templates = nn.Parameter(torch.zeros(1, _template_window(k) ** 2, places))
        if c["fg_readout"] == "presence":  # the prior rate per place, following the gates
            if c["fg_painter"] != "place":
                raise ValueError("fg_readout: presence needs fg_painter: place")
            self.register_buffer("place_rate", torch.full((self.grid[0] * self.grid[1],), 0.5))
        if c["fg_refine_steps"] and c["fg_presence"]:
            raise ValueError("fg_refine_steps and fg_presence exclude each other")
        pooled = (height // c["bg_pool"]) * (width // c["bg_pool"])
        hidden, e = c["bg_width"], c["bg_latent"]
        self.bg_encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(pooled, hidden), nn.ReLU(), nn.Linear(hidden, 2 * e)
        )
        out = height * width if c["bg_decoder"] == "full" else c["bg_grid"] ** 2
        out += int(c["bg_decoder"] == "shape")  # the level's logit
        self.bg_decoder = nn.Sequential(
            nn.Linear(e, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, out),
        )  # fmt: skip
        if c["bg_decoder"] != "full":  # bilinear upsampling of the coarse map as A_h m A_w^T
            self.register_buffer("upsample_rows", _linear_upsampling(c["bg_grid"], height), False)
            self.register_buffer("upsample_cols", _linear_upsampling(c["bg_grid"], width), False)
        if (c["fg_blind_epochs"] or not c["fg_image"]) and not c["fg_opening"]:
            raise ValueError(
                "fg_blind_epochs and fg_image: false need fg_opening: true (the opening is what "
                "a blind encoder sees)"
            )
        if c["fg_blind_epochs"] and c["fg_image"]:  # image weights: 0 at the start, while blind
            with torch.no_grad():
                self.fg_encoder[0].weight[:, 0].zero_()
        if c["fg_place_prior"]:  # the prior's mean and variance per place (see foreground_kl)
            n = c["patch_latent"] * self.grid[0] * self.grid[1]
            self.register_buffer("place_prior_mean", torch.zeros(n))
            self.register_buffer("place_prior_var", torch.ones(n))
        if c["fg_presence"]:  # the prior's presence rate per patch (see presence_kl)
            self.register_buffer("presence_rate", torch.full((1, *self.grid), 0.5))
        if c["fg_position"]:  # a learned map per patch-grid position, added after the first layers
            self.fg_encoder_position = nn.Parameter(torch.zeros(1, ch, *self.grid))
            self.fg_decoder_position = nn.Parameter(torch.zeros(1, ch, *self.grid))
        with torch.no_grad():  # both layers start nearly empty, the foreground less so
            self.fg_decoder[-1].bias.fill_(c["fg_init_bias"])
            self.bg_decoder[-1].bias.fill_(-4.0)
            if c["bg_decoder"] == "shape":
                self.bg_decoder[-1].bias[1:].fill_(0.0)

    def param_groups(self) -> list[dict]:
        """Optimiser groups: the background's learning rate scaled by bg_lr_scale (so that it
        learns each disk before the foreground can take it)."""
        background = [*self.bg_encoder.parameters(), *self.bg_decoder.parameters()]
        ids = {id(p) for p in background}
        foreground = [p for p in self.parameters() if id(p) not in ids]
        return [
            {"params": foreground, "lr_scale": 1.0},
            {"params": background, "lr_scale": float(self.config["bg_lr_scale"])},
        ]

    def encode(self, x, epoch=None):
        """{"z_fg": (mu, logvar) flattened to (N, d * h * w), "z_bg": (mu, logvar) (N, e)}.
        In training epochs up to fg_blind_epochs the foreground encoder sees the opening alone."""
        c = self.config
        mu_bg, logvar_bg = self.bg_encoder(F.avg_pool2d(x, c["bg_pool"])).chunk(2, 1)
        inputs = x
        if c["fg_opening"]:
            opening = soft_opening(x, c["fg_kernel"], c["fg_opening_sharpness"])
            blind = epoch is not None and epoch <= c["fg_blind_epochs"]
            if not c["fg_image"]:
                inputs = opening
            else:
                inputs = torch.cat([torch.zeros_like(x) if blind else x, opening], dim=1)
        out = self._positioned(self.fg_encoder, inputs, "fg_encoder_position")
        d = c["patch_latent"]
        mu_fg, logvar_fg = out[:, : 2 * d].flatten(1).view(len(x), 2, -1).unbind(1)
        posteriors = {"z_fg": (mu_fg, logvar_fg), "z_bg": (mu_bg, logvar_bg)}
        if c["fg_presence"]:  # q(s = 1) per patch, as a logit (no variance: Bernoulli)
            posteriors["s_fg"] = (out[:, 2 * d].flatten(1), None)
        return posteriors

    def _positioned(self, network, inputs, position: str):
        """`network(inputs)`, with fg_position the learned position map added after its first
        layer: the patch grid's places become distinguishable (cells sit at fixed places)."""
        if not self.config["fg_position"]:
            return network(inputs)
        return network[1:](network[0](inputs) + getattr(self, position))

    def background_logits(self, z_bg):
        c = self.config
        b = self.bg_decoder(z_bg)
        if c["bg_decoder"] == "full":
            return b.view(-1, 1, self.height, self.width)
        g = c["bg_grid"]
        if c["bg_decoder"] == "coarse":
            return self.upsample(b.view(-1, 1, g, g))
        level, mask = b[:, :1].view(-1, 1, 1, 1), self.upsample(b[:, 1:].view(-1, 1, g, g))
        return _logit_of_product(F.logsigmoid(level) + F.logsigmoid(c["bg_sharpness"] * mask))

    def presence_kl(self, logits):
        """Per image, the sum over patches of KL(Bernoulli(q) || Bernoulli(pi)), pi the
        prior's rate at that patch: a patch where cells seldom are is dear to use.

        In training pi follows the mean of q at each patch over the batches (a moving
        average, momentum 0.99): the rate that minimises the summed KL, that is the
        empirical-Bayes prior, learned without a gradient step that would take thousands
        of steps to reach a rate of 1e-3."""
        q = torch.sigmoid(logits)
        if self.training:
            with torch.no_grad():
                batch_rate = q.mean(0).view_as(self.presence_rate)
                _follow(self.presence_rate, batch_rate)
        rate = self.presence_rate.flatten(1).clamp(RATE_FLOOR, 1 - RATE_FLOOR)
        kl = q * (F.logsigmoid(logits) - rate.log()) + (1 - q) * (
            F.logsigmoid(-logits) - torch.log1p(-rate)
        )
        return kl.sum(1)

    def foreground_kl(self, mu, logvar, epoch=None):
        """Per image, KL(q(z_fg) || p(z_fg)). p is N(0, I), or with fg_place_prior a Gaussian
        per place and latent dimension whose mean and variance follow, in training after the
        warm-up epochs, the moments of q over the batches (moving averages, momentum 0.99):
        the moment-matched, empirical-Bayes prior (variance floor PLACE_PRIOR_MIN_VAR).
        Not in the warm-up: before the cells are learned the posteriors agree everywhere,
        the prior narrowed everywhere, and the foreground stayed dead (1 of 9 runs)."""
        if not self.config["fg_place_prior"]:
            return gaussian_kl(mu, logvar)
        if self.training and (epoch is None or epoch > self.warmup_epochs()):
            with torch.no_grad():
                mean = _follow(self.place_prior_mean, mu.mean(0))
                _follow(self.place_prior_var, (logvar.exp() + (mu - mean).pow(2)).mean(0))
                self.place_prior_var.clamp_(min=PLACE_PRIOR_MIN_VAR)
        return gaussian_kl(mu, logvar, (self.place_prior_mean, self.place_prior_var))

    def upsample(self, coarse):
        """(N, 1, g, g) -> (N, 1, H, W), bilinear (F.interpolate's weights, align_corners
        False) as two small matrix products: on a CPU a third of the interpolation kernels'
        cost, forward and backward."""
        return self.upsample_rows @ coarse @ self.upsample_cols.t()

    def decode(self, latents):
        """{"foreground": f logits, "background": b logits} (N, 1, H, W) each."""
        f_logits = self._fg_decoded(latents["z_fg"])
        if self.config["fg_painter"] == "place":
            f_logits = self._place_painting(f_logits)
        if "s_fg" in latents:  # f = q(s = 1) x the painter's f, q constant over each patch
            k = self.config["fg_kernel"]
            presence = latents["s_fg"].view(-1, 1, *self.grid)
            presence = presence.repeat_interleave(k, 2).repeat_interleave(k, 3)
            f_logits = _logit_of_product(F.logsigmoid(f_logits) + F.logsigmoid(presence))
        return {"foreground": f_logits, "background": self.background_logits(latents["z_bg"])}

    def _fg_decoded(self, z_fg):
        """The foreground decoder's output (N, C, H', W') for z_fg (N, patch_latent x places):
        f's logits with the shared painter, the gates' logits (C = 1) with the place painter."""
        z = z_fg.view(-1, self.config["patch_latent"], *self.grid)
        return self._positioned(self.fg_decoder, z, "fg_decoder_position")

    def place_gates(self, z_fg):
        """The place painter's gates g_p (N, places) for z_fg."""
        return torch.sigmoid(self._fg_decoded(z_fg).flatten(1))

    def _fold_places(self, log_presence):
        """The place painter's noisy-OR: log(1 - s_p t_p) per place and template pixel
        (N, window^2, places), and log(1 - f) = its sum over the places covering each pixel
        (N, 1, H, W), from log s_p (N, 1 or window^2, places) and the templates t_p."""
        k = self.config["fg_kernel"]
        log_st = log_presence + F.logsigmoid(TEMPLATE_SCALE * self.fg_templates)
        log_not_st = _log1m_exp(log_st.clamp_max(-1e-6))
        log_not_f = F.fold(
            log_not_st, (self.height, self.width), _template_window(k), padding=k // 2, stride=k
        )
        return log_not_st, log_not_f

    def _place_painting(self, gate_logits):
        """fg_painter place: f = 1 - prod_p (1 - g_p t_p), g_p = sigmoid(the gate of patch p),
        t_p = sigmoid(its template), a (k + 2 (k // 2))-square window centred on the patch:
        each place paints its own learned shape, so a cell-like window off the places where
        cells were learned has no shape to explain it. Returns the logits of f.

        With fg_readout presence, in training, place_rate follows the batch's mean gate per
        place (a moving average, momentum 0.99, like the place prior): the empirical-Bayes
        rate of a cell at each place, learned with the weights, so nothing is fitted after
        training. No gradient flows through it; the weights train as without it."""
        if self.training and self.config["fg_readout"] == "presence":
            with torch.no_grad():
                _follow(self.place_rate, torch.sigmoid(gate_logits).flatten(1).mean(0))
        return -_logit_of_product(self._fold_places(F.logsigmoid(gate_logits).flatten(2))[1])

    def place_evidence(self, x, means):
        """(N, places): for each place p, with the others' gates g as decoded from `means`,
        log p(x | s_p = 1) - log p(x | s_p = 0) - fg_pixel_penalty (sum f | s_p = 1 - sum f |
        s_p = 0), where s_p = 1 paints p's template at full strength (g_p = 1) and s_p = 0
        paints nothing there: the objective's own evidence, in nats, that a cell is at p.
        Only p's window changes, so the difference is taken over it alone."""
        k = self.config["fg_kernel"]
        window, pad = _template_window(k), k // 2
        log_not_gt, log_not_f = self._fold_places(
            F.logsigmoid(self._fg_decoded(means["z_fg"])).flatten(2)
        )

        def windows(t):  # (N, 1, H, W) -> (N, window^2, places), zeros outside the image
            return F.unfold(t, window, padding=pad, stride=k)

        log_not_others = windows(log_not_f) - log_not_gt  # log(1 - f) without p's term
        inside, on = windows(torch.ones_like(x)), windows(x)
        rate_b = windows(F.softplus(self.background_logits(means["z_bg"])))

        def score(log_not_f_p):  # per-pixel log p(x | f, b) - penalty * f
            log_not_p = (log_not_f_p - rate_b).clamp_max(-1e-7)
            ll = on * _log1m_exp(log_not_p) + (1 - on) * log_not_p
            return ll - self.config["fg_pixel_penalty"] * -torch.expm1(log_not_f_p)

        full = self.fg_templates.new_zeros(1, 1, 1)  # log s_p = 0: the template at full strength
        log_not_t = self._fold_places(full)[0]
        present = score(log_not_others + log_not_t)
        return (inside * (present - score(log_not_others))).sum(1)

    def presence_foreground(self, x, means):
        """fg_readout presence: f = 1 - prod_p (1 - P_p t_p) (N, 1, H, W), P_p = sigmoid(logit
        place_rate_p + place_evidence_p), the probability of a cell at p given the image and
        the other places (one mean-field update of a binary presence per place), under the
        prior rate place_rate (learned in training, `_place_painting`; clipped to [1e-4,
        1 - 1e-4]). The gates at the posterior means say yes
        or no; P says how sure the objective is, so an ambiguous window gets a score between."""
        evidence = self.place_evidence(x, means)
        log_p = F.logsigmoid(
            torch.logit(self.place_rate.clamp(RATE_FLOOR, 1 - RATE_FLOOR)) + evidence
        ).unsqueeze(1)
        return -torch.expm1(self._fold_places(log_p)[1])

    @torch.no_grad()
    def fit_place_rates(self, images, batch_size=250):
        """place_rate = the mean gate per place over `images` (the training images,
        (N, 1, H, W)) at their refined posterior means, clipped to [1e-4, 1 - 1e-4]: the
        rate fitted once after training, as round 17 did (training now learns it,
        `_place_painting`); `fgbg.layered_checks` uses it to read a means run, or to
        compare a presence run's learned rates with fitted ones. No labels."""
        gates = []
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].float()
            posteriors = self.refine(x, self.encode(x))
            gates.append(self.place_gates(posteriors["z_fg"][0]))
        self.place_rate.copy_(torch.cat(gates).mean(0).clamp(RATE_FLOOR, 1 - RATE_FLOOR))

    def refine(self, x, posteriors):
        """The posteriors with the foreground's refined by fg_refine_steps Adam steps on each
        image's own negative ELBO (one reparameterised sample per step, a fixed noise seed),
        from the encoder's output: semi-amortised inference. The encoder is an amortised
        guess; the decoder knows where cells are (fg_painter place), and the steps find what
        the model's objective prefers for this image. No labels; the weights stay fixed. The
        background's code stays the encoder's: its free bits are a batch mean, which would
        tie an image's answer to the others in its batch."""
        steps = self.config["fg_refine_steps"]
        if not steps:
            return posteriors
        mu, logvar = (t.detach().clone().requires_grad_() for t in posteriors["z_fg"])
        fixed = {n: (m.detach(), lv.detach()) for n, (m, lv) in posteriors.items() if n != "z_fg"}
        optimiser = torch.optim.Adam([mu, logvar], lr=REFINE_LR)
        generator = torch.Generator(x.device).manual_seed(0)
        training, self.training = self.training, False  # the place prior must not follow
        try:
            with torch.enable_grad():
                for _ in range(steps):
                    current = {"z_fg": (mu, logvar), **fixed}
                    out = self.decode(
                        {n: reparameterise(m, lv, generator) for n, (m, lv) in current.items()}
                    )
                    loss = self.objective(x, out["foreground"], out["background"], current)
                    # x len(x): each image's step follows its own loss, not the batch mean's
                    grads = torch.autograd.grad(loss["loss"] * len(x), [mu, logvar])
                    mu.grad, logvar.grad = grads
                    optimiser.step()
        finally:
            self.training = training
        return {"z_fg": (mu.detach(), logvar.detach()), **fixed}

    def layers(self, x):
        """(f, b) probabilities at the posterior means (refined with fg_refine_steps),
        (N, 1, H, W) each."""
        posteriors = self.refine(x, self.encode(x))
        means = {name: mu for name, (mu, _logvar) in posteriors.items()}
        out = self.decode(means)
        f = torch.sigmoid(out["foreground"])
        if self.config["fg_readout"] == "presence":
            f = self.presence_foreground(x, means)
        return f, torch.sigmoid(out["background"])

    def foreground_layer(self, x, switched_off=()):
        """f alone: what the evaluation scores (no latent to switch off)."""
        return self.layers(x)[0]

    def warmup_epochs(self) -> int:
        """Epochs of this model's own schedule (the background-first epochs, the KL weight's
        rise), which the stopping rule does not count."""
        c = self.config
        ramp = c["fg_kl_ramp_start"] + c["fg_kl_ramp_epochs"]
        ramp = ramp if c.get("fg_kl_weight_final") is not None else 0
        blind = c["fg_blind_epochs"] if c["fg_image"] else 0  # without the image: always blind
        return max(c["bg_warmup_epochs"], blind, ramp)

    def fg_kl_weight(self, epoch: int | None) -> float:
        """The foreground's KL weight in `epoch`: fg_kl_weight, or with fg_kl_weight_final a
        linear rise to it over fg_kl_ramp_epochs after fg_kl_ramp_start; outside training
        (epoch None: the validation loss) the final weight."""
        c = self.config
        start, final = c["fg_kl_weight"], c.get("fg_kl_weight_final")
        if final is None:
            return start
        if epoch is None:
            return final
        progress = (epoch - c["fg_kl_ramp_start"]) / c["fg_kl_ramp_epochs"]
        return start + (final - start) * min(max(progress, 0.0), 1.0)

    def loss_terms(self, x, generator=None, epoch=None):
        c = self.config
        posteriors = self.encode(x, epoch)
        out = self.decode(
            {
                name: mu if logvar is None else reparameterise(mu, logvar, generator)
                for name, (mu, logvar) in posteriors.items()
            }
        )
        f_logits = out["foreground"]
        if epoch is not None and epoch <= c["bg_warmup_epochs"]:  # background first
            f_logits = torch.full_like(f_logits, -30.0)
        return self.objective(x, f_logits, out["background"], posteriors, epoch)

    def objective(self, x, f_logits, b_logits, posteriors, epoch=None) -> dict:
        """The loss (batch means) for given layer logits and posteriors: -log p(x | f, b)
        + the foreground's weighted KL + the background's KL above its free bits + the pixel
        penalty on f."""
        c = self.config
        ll = noisy_or_log_likelihood(f_logits, b_logits, x, c["fg_grad_floor"]).mean()
        kl_fg = self.foreground_kl(*posteriors["z_fg"], epoch).mean()
        mu_bg, logvar_bg = posteriors["z_bg"]
        kl_bg_dims = (0.5 * (mu_bg.pow(2) + logvar_bg.exp() - 1 - logvar_bg)).mean(0)
        fg_pixels = torch.sigmoid(f_logits).flatten(1).sum(1).mean()
        loss = (
            -ll
            + self.fg_kl_weight(epoch) * kl_fg
            + kl_bg_dims.clamp_min(c["bg_free_bits"]).sum()  # free bits per dimension
            + c["fg_pixel_penalty"] * fg_pixels
        )
        if "s_fg" in posteriors:
            loss = loss + self.presence_kl(posteriors["s_fg"][0]).mean()
        return {
            "loss": loss,
            "ll": ll,
            "kl_fg": kl_fg,
            "kl_bg": kl_bg_dims.sum(),
            "fg_pixels": fg_pixels,
        }
