"""The single-VAE baseline: the dual model's foreground encoder and decoder with one latent
`z` of latent_dim dimensions and no background branch: loss = -(log-likelihood - KL(z))."""

from __future__ import annotations

from fgbg.losses import gaussian_kl
from fgbg.models.base import _VAEBase


class VAE(_VAEBase):
    def __init__(self, config, height, width):
        super().__init__(config, height, width)
        self.fg_encoder, self.fg_decoder = self._foreground_parts(config["latent_dim"])

    def encode(self, x):
        return {"z": self.fg_encoder(self.padding.pad(x))}

    def decode(self, latents):
        return {"foreground": self.padding.crop(self.fg_decoder(latents["z"]))}

    def loss_terms(self, x, generator=None, epoch=None):
        posteriors = self.encode(x)
        out = self.decode(self.sample(posteriors, generator))
        ll_fg = self.foreground_log_likelihood(out["foreground"], x).mean()
        kl_z = gaussian_kl(*posteriors["z"]).mean()
        return self._with_decoder_l2({"loss": -(ll_fg - kl_z), "ll_fg": ll_fg, "kl_z": kl_z})
