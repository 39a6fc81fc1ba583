"""The dual VAE of the thesis.

Dual VAE (SPEC section 3):

    z1 ~ q(z1 | x)      foreground encoder, first convolution fg_kernel x fg_kernel (a cell)
    z2 ~ s(z2 | x)      background encoder, first convolution pool_size x pool_size
    (t1, t2) = A (z1, z2) + b                     one dense interaction layer
    x    ~ p(x | t1)    transposed-convolution decoder, Bernoulli logits over H x W
    g(x) ~ r(g | t2)    MLP decoder, Bernoulli cross-entropy against the pooled target
    g(x) = sigmoid(target_sharpness * (mean of each pool_size block of x - 0.5))

    loss = -(ELBO1 + background_weight * ELBO2), ELBO = log-likelihood - KL(posterior || N(0, I))

with one reparameterised sample per image and analytic KL terms. An image whose sides
fg_kernel and pool_size do not both divide is padded with zeros below and to the right to
their least common multiple (g(x) is pooled from the padded image) and the foreground is
cropped back (`fgbg.layers.Padding`). The baseline (type vae) is
the same foreground encoder and decoder with one latent `z` of size latent_dim.

Keys for the ablations that reproduce the thesis code's quirks (SPEC section 3; their
defaults give exactly the objective above). Write KL(z_k) = CE_k - H_k with
CE_k = E_q[-log N(z_k; 0, I)] (cross-entropy to the prior) and H_k the entropy of q(z_k|x):

- `background_kl_weight` (null = background_weight): weight of KL(z2), or of CE_2 alone
  when the entropy is weighted separately.
- `background_entropy_weight` (null = the KL(z2) weight): weight of H_2; the thesis code
  did not scale the entropy term (1), i.e. the loss holds kl_weight * CE_2 - 1 * H_2.
- `prior_on: interaction` (default `latents`): the prior N(0, I) is evaluated on the
  interaction outputs t = A z + b instead of on z (the thesis code). CE_k then is the
  analytic E_q[-log N(t_k; 0, I)] under the pushed-forward posterior
  t ~ N(A mu + b, A diag(s^2) A^T), whose block k has mean (A mu + b)_k and per-dimension
  variances (A^2 s^2)_k (the expectation of the code's one-sample log prior; gradients
  reach A); H_k stays the entropy of q(z_k|x). So kl_z1, kl_z2 are CE_k(t) - H_k(z), not
  KL divergences: they can be negative, and the loss is not bounded below (a column of A
  at 0 frees that latent's variance).
- `decoder_l2` (default 0): adds decoder_l2 * (sum of squares of every weight tensor,
  not the biases, of both decoders; not the interaction layer) as the term `decoder_l2`.

`thesis_code` in config.yaml (commented out) sets prior_on: interaction, decoder_l2: 0.01,
background_entropy_weight: 1, and its 20 epochs of batch 5 as the entry's `training` keys.

Every model has `encode(x) -> {name: (mu, logvar)}` (ordered: concatenating the blocks in
key order gives all latent dimensions), `decode(latents) -> {"foreground": ..., ...}`,
`foreground_layer(x, switched_off=())` (what the evaluation scores; the dual model also
`background_branch(x)`),
and `loss_terms(x, generator) -> {"loss", "ll_fg", "kl_<latent>", ...}` (batch means;
`ce_z2`, `entropy_z2` when the KL is split, `decoder_l2` when that penalty is on).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fgbg.layers import PatchConv2d
from fgbg.losses import bernoulli_log_likelihood, gaussian_entropy, gaussian_kl, prior_cross_entropy
from fgbg.models.base import _VAEBase


class BackgroundEncoder(nn.Module):
    """One pool x pool / stride pool convolution (one value per block), then an MLP."""

    def __init__(self, pool, channels, hidden, latent, blocks):
        super().__init__()
        self.net = nn.Sequential(
            PatchConv2d(1, channels, pool),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(channels * blocks, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * latent),
        )

    def forward(self, x):
        return self.net(x).chunk(2, dim=1)


class BackgroundDecoder(nn.Module):
    """A small MLP to the (H / pool) x (W / pool) logits of the pooled target."""

    def __init__(self, latent, hidden, grid):
        super().__init__()
        self.grid = grid
        self.net = nn.Sequential(
            nn.Linear(latent, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, grid[0] * grid[1]),
        )

    def forward(self, t):
        return self.net(t).view(-1, 1, *self.grid)


class DualVAE(_VAEBase):
    def __init__(self, config, height, width):
        pool = config["pool_size"]
        super().__init__(config, height, width, math.lcm(config["fg_kernel"], pool))
        c = config
        self.grid = (self.height // pool, self.width // pool)
        self.fg_encoder, self.fg_decoder = self._foreground_parts(c["z1_dim"])
        self.bg_encoder = BackgroundEncoder(
            pool, c["bg_channels"], c["bg_hidden"], c["z2_dim"], self.grid[0] * self.grid[1]
        )
        total = c["z1_dim"] + c["z2_dim"]
        self.interaction = nn.Linear(total, total)
        self.bg_decoder = BackgroundDecoder(c["z2_dim"], c["bg_hidden"], self.grid)

    def encode(self, x):
        x = self.padding.pad(x)
        return {"z1": self.fg_encoder(x), "z2": self.bg_encoder(x)}

    def decode(self, latents):
        t = self.interaction(torch.cat([latents["z1"], latents["z2"]], dim=1))
        t1, t2 = t.split([self.config["z1_dim"], self.config["z2_dim"]], dim=1)
        foreground = self.padding.crop(self.fg_decoder(t1))
        return {"foreground": foreground, "background": self.bg_decoder(t2)}

    def background_target(self, x):
        c = self.config
        block_mean = F.avg_pool2d(self.padding.pad(x), c["pool_size"])
        return torch.sigmoid(c["target_sharpness"] * (block_mean - 0.5))

    def background_branch(self, x):
        """(the background decoder's Bernoulli mean of g(x) at the posterior means, g(x))."""
        means = {name: mu for name, (mu, _logvar) in self.encode(x).items()}
        return torch.sigmoid(self.decode(means)["background"]), self.background_target(x)

    def loss_terms(self, x, generator=None, epoch=None):
        posteriors = self.encode(x)
        out = self.decode(self.sample(posteriors, generator))
        ll_fg = self.foreground_log_likelihood(out["foreground"], x).mean()
        ll_bg = bernoulli_log_likelihood(out["background"], self.background_target(x)).mean()
        c = self.config
        weight = c["background_weight"]
        kl_weight = weight if c["background_kl_weight"] is None else c["background_kl_weight"]
        if c["prior_on"] == "latents" and c["background_entropy_weight"] is None:
            kl_z1 = gaussian_kl(*posteriors["z1"]).mean()
            kl_z2 = gaussian_kl(*posteriors["z2"]).mean()
            loss = -(ll_fg - kl_z1) - weight * ll_bg + kl_weight * kl_z2
            terms = {"loss": loss, "ll_fg": ll_fg, "kl_z1": kl_z1, "ll_bg": ll_bg, "kl_z2": kl_z2}
            return self._with_decoder_l2(terms)
        entropy_weight = c["background_entropy_weight"]
        entropy_weight = kl_weight if entropy_weight is None else entropy_weight
        ce_z1, ce_z2 = (ce.mean() for ce in self.prior_cross_entropies(posteriors))
        h_z1, h_z2 = (gaussian_entropy(logvar).mean() for _, logvar in posteriors.values())
        kl_z1, kl_z2 = ce_z1 - h_z1, ce_z2 - h_z2
        loss = -(ll_fg - kl_z1) - weight * ll_bg + kl_weight * ce_z2 - entropy_weight * h_z2
        terms = {"loss": loss, "ll_fg": ll_fg, "kl_z1": kl_z1, "ll_bg": ll_bg, "kl_z2": kl_z2}
        terms |= {"ce_z2": ce_z2, "entropy_z2": h_z2}
        return self._with_decoder_l2(terms)

    def prior_cross_entropies(self, posteriors):
        """Per-image (CE_1, CE_2): E_q[-log N(0, I)] at the latents z1, z2 (prior_on latents)
        or at the interaction outputs t1, t2 under the pushed-forward posterior of t = A z + b
        (prior_on interaction; block k of t has mean (A mu + b)_k, variances (A^2 s^2)_k)."""
        mu = torch.cat([posteriors["z1"][0], posteriors["z2"][0]], dim=1)
        var = torch.cat([posteriors["z1"][1], posteriors["z2"][1]], dim=1).exp()
        if self.config["prior_on"] == "interaction":
            a = self.interaction.weight
            mu, var = self.interaction(mu), var @ a.pow(2).T
        sizes = [self.config["z1_dim"], self.config["z2_dim"]]
        return [
            prior_cross_entropy(m, v)
            for m, v in zip(mu.split(sizes, dim=1), var.split(sizes, dim=1), strict=True)
        ]
