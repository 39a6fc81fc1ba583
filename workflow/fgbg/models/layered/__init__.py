"""The layered VAE: a foreground layer and a background layer composed the way the data
are made: a noisy-OR for binary images, a sum for intensities (SPEC section 8;
docs/models.md, "The layered model").

Generative model, for an H x W binary image x with cells of side k (`fg_kernel`, the data's
`cells.size`) and the image cut into an h x w grid of k x k patches, the places:

    z_fg[p] ~ N(m_p, S_p)   `patch_latent` dimensions per place p; m_p and S_p follow the
                            posteriors' moments at p (an empirical-Bayes place prior)
    z_bg    ~ N(0, I)       one global background latent (`bg_latent` dimensions)
    g_p = sigmoid(D(z_fg)_p)          a gate per place, D a small convolution over the grid
    f = 1 - prod_p (1 - g_p t_p)      t_p = sigmoid(place p's learned template) over the
                                      patch and half a cell around it (`foreground`)
    b = sigmoid(l) sigmoid(8 m)       a level l and a coarse mask m (`bg_grid` square,
                                      upsampled by a cubic B-spline), both decoded
                                      from z_bg (`background`)
    x[i] ~ Bernoulli(1 - (1 - f[i]) (1 - b[i]))   a pixel is on when a cell or the
                                                  background turns it on (`noisy_or`)

On intensity images the likelihood is the data's (chosen when a job trains, `training`):
x[i] ~ N(offset + u f[i] + v b[i], sd^2), the layers' light added up, with u, v, the offset
and sd learned (`gaussian`), its log taken in expectation over each place's presence drawn 0
or 1 at its gate (so a gate is a probability, not a dimmer); each template is a shape (its
brightest pixel 1) and the pixel penalty charges the foreground's light u f; everything
else below is the same.

Objective (per image, one reparameterised sample, analytic KLs):

    -log p(x | z_fg, z_bg) + fg_kl_weight KL(z_fg) + KL(z_bg) above bg_free_bits per
    dimension + fg_pixel_penalty sum_i f[i]

Training: the background's learning rate is scaled by `bg_lr_scale`; for the first
`fg_blind_epochs` epochs the foreground encoder sees only the image's soft opening (the
pixels of hole-free cell-sized windows), so it cannot tell whether a disk is on and the
background learns the disks first (on intensities, where the opening marks an active disk
too, the foreground is off in those epochs); after them the place prior follows the
batches (a moving average, no gradient). With the weights fixed, each place's rate r_p,
the prior probability of a cell there, is fitted on training images by EM, and on binary
images each place's template is refitted by EM as well, one place kept per cell
(`fit_readout`).

Any image size: the image is padded with zeros below and to the right to the next multiple
of the least common multiple of k and `bg_pool` (`fgbg.layers.Padding`); both layers are
built and drawn at the padded size and cut back to H x W, so the likelihood, the penalty and
the readout read the image's own pixels only.

Scored output (`foreground_layer`, what the evaluation reads; `inference`): the encoder's
posterior over z_fg is refined by `fg_refine_steps` Adam steps on the image's own objective;
then each place's probability of a cell, P_p = sigmoid(logit r_p + e_p), e_p the evidence in
nats for p's template at full strength against nothing there (the likelihood's; on
intensities less the pixel penalty), is painted with its template: f = 1 - prod_p (1 - P_p
t_p).

What keeps the layers apart: the foreground pays per place it uses (its KL) and per pixel it
draws (the pixel penalty) and paints only at places with a learned template; the
background cannot draw a cell (it is flat inside a coarse shape); the blind start gives the
disks to the background before the foreground can take them. The studies that chose each
part are docs/studies/.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fgbg.layers import Padding
from fgbg.models.base import reparameterise
from fgbg.models.layered.background import Background
from fgbg.models.layered.foreground import Foreground
from fgbg.models.layered.gaussian import Additive
from fgbg.models.layered.inference import fit_readout, intensities, presence_foreground, refine
from fgbg.models.layered.noisy_or import NoisyOr

__all__ = ["LayeredVAE"]

FOREGROUND_OFF = -30.0  # f's logit where the foreground is off: f = 1e-13


class LayeredVAE(nn.Module):
    def __init__(self, config: dict, height: int, width: int):
        super().__init__()
        self.config, self.height, self.width = config, height, width
        self.padding = Padding(height, width, math.lcm(config["fg_kernel"], config["bg_pool"]))
        # the data's kind: binary images compose by a noisy-OR, intensities add up
        composition = Additive if config.get("likelihood") == "gaussian" else NoisyOr
        self.foreground = Foreground(config, *self.padding.padded)
        self.background = Background(config, *self.padding.padded, composition.MASK_START)
        self.composition = composition()

    def param_groups(self) -> list[dict]:
        """Optimiser groups: the background's learning rate scaled by bg_lr_scale."""
        background = list(self.background.parameters())
        ids = {id(p) for p in background}
        foreground = [p for p in self.parameters() if id(p) not in ids]
        return [
            {"params": foreground, "lr_scale": 1.0},
            {"params": background, "lr_scale": float(self.config["bg_lr_scale"])},
        ]

    def warmup_epochs(self) -> int:
        """The blind epochs, which the stopping rule does not count."""
        return self.config["fg_blind_epochs"]

    def encode(self, x, epoch=None):
        """{"z_fg": (mu, logvar) (N, patch_latent x places), "z_bg": (mu, logvar) (N, e)}."""
        x = self.padding.pad(x)
        z_bg = self.background.encode(x)
        return {"z_fg": self.foreground.encode(x, self.blind(epoch)), "z_bg": z_bg}

    def decode(self, latents, spread=False):
        """{"foreground": f logits, "background": b logits}, (N, 1, H, W) each; with
        `spread` on intensities also "spread", Var(f) over the places' presences drawn at
        their gates (`Additive.log_likelihood`)."""
        gates = self.foreground.gate_logits(latents["z_fg"])
        out = {"background": self.padding.crop(self.background.logits(latents["z_bg"]))}
        if spread and intensities(self):
            f_logits, f_spread = self.foreground.paint_spread(gates)
            out["spread"] = self.padding.crop(f_spread)
        else:
            f_logits = self.foreground.paint(gates)
        return {"foreground": self.padding.crop(f_logits), **out}

    def blind(self, epoch) -> bool:
        """Whether training `epoch` is one of the blind epochs (None: not training)."""
        return epoch is not None and epoch <= self.config["fg_blind_epochs"]

    def loss_terms(self, x, generator=None, epoch=None):
        posteriors = self.encode(x, epoch)
        blind = self.blind(epoch)
        out = self.decode(
            {name: reparameterise(mu, logvar, generator) for name, (mu, logvar) in
             posteriors.items()},
            spread=not blind,  # while blind on intensities f is off: nothing to spread
        )  # fmt: skip
        if blind and intensities(self):
            # on intensities the opening marks an active disk's windows too: the foreground
            # is off while blind (docs/studies/intensity-03-blind-start.md)
            out["foreground"] = torch.full_like(out["foreground"], FOREGROUND_OFF)
        return self.objective(x, out, posteriors, epoch)

    def objective(self, x, out, posteriors, epoch=None) -> dict:
        """The loss (batch means) for the layers `decode` gave (`out`, with its "spread" on
        intensities) and the posteriors, and its terms."""
        c = self.config
        f_logits, b_logits = out["foreground"], out["background"]
        ll = self.composition.log_likelihood(f_logits, b_logits, x, out.get("spread")).mean()
        learn_prior = self.training and not self.blind(epoch)
        kl_fg = self.foreground.kl(*posteriors["z_fg"], learn_prior).mean()
        mu_bg, logvar_bg = posteriors["z_bg"]
        kl_bg_dims = (0.5 * (mu_bg.pow(2) + logvar_bg.exp() - 1 - logvar_bg)).mean(0)
        fg_pixels = self.composition.light(torch.sigmoid(f_logits)).flatten(1).sum(1).mean()
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

    def layers(self, x):
        """(f, b), (N, 1, H, W) each: the scored foreground (the presence readout at the
        refined posterior means) and the background at the posterior means."""
        posteriors = refine(self, x, self.encode(x))
        means = {name: mu for name, (mu, _logvar) in posteriors.items()}
        b = torch.sigmoid(self.padding.crop(self.background.logits(means["z_bg"])))
        return self.padding.crop(presence_foreground(self, x, means)), b

    def fit_readout(self, images):
        """After training, with the weights fixed: the place rates and, on binary images,
        the templates (`inference.fit_readout`)."""
        fit_readout(self, images)

    def foreground_layer(self, x, switched_off=()):
        """f alone: what the evaluation scores (no latent to switch off)."""
        return self.layers(x)[0]
