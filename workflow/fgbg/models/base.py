"""Shared parts of the VAE families: the foreground encoder and decoder (a cell-sized patch
convolution and its mirror), the reparameterisation, and the base class with the read-outs
the evaluation uses (`foreground_layer`)."""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from fgbg.layers import Padding, PatchConv2d, PatchConvTranspose2d
from fgbg.losses import bernoulli_log_likelihood, gaussian_log_likelihood


def reparameterise(mu, logvar, generator=None):
    noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * noise


class ForegroundEncoder(nn.Module):
    """kernel x kernel / stride kernel patch convolution, then 3 x 3 stride-2 convolutions,
    then an MLP to (mu, logvar)."""

    def __init__(self, height, width, kernel, channels, hidden, latent):
        super().__init__()
        h, w = height // kernel, width // kernel
        self.grid_sizes = [(h, w)]
        layers = [PatchConv2d(1, channels[0], kernel), nn.ReLU()]
        for c_in, c_out in pairwise(channels):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
            h, w = (h + 1) // 2, (w + 1) // 2
            self.grid_sizes.append((h, w))
        layers += [nn.Flatten(), nn.Linear(channels[-1] * h * w, hidden), nn.ReLU()]
        layers += [nn.Linear(hidden, 2 * latent)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).chunk(2, dim=1)


class ForegroundDecoder(nn.Module):
    """Mirror of the encoder: MLP, 4 x 4 stride-2 transposed convolutions, and a
    kernel x kernel / stride kernel transposed convolution to one H x W map."""

    def __init__(self, grid_sizes, kernel, channels, hidden, latent):
        super().__init__()
        self.grid_sizes = grid_sizes
        self.channels = channels
        h, w = grid_sizes[-1]
        self.mlp = nn.Sequential(
            nn.Linear(latent, hidden),
            nn.ReLU(),
            nn.Linear(hidden, channels[-1] * h * w),
            nn.ReLU(),
        )
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
            for c_out, c_in in pairwise(channels)
        )[::-1]
        self.to_image = PatchConvTranspose2d(channels[0], 1, kernel)

    def forward(self, t):
        h, w = self.grid_sizes[-1]
        y = self.mlp(t).view(-1, self.channels[-1], h, w)
        for layer, (h, w) in zip(self.upsample, self.grid_sizes[-2::-1], strict=True):
            y = F.relu(layer(y)[:, :, :h, :w])  # crop the odd sizes back
        return self.to_image(y)


class _VAEBase(nn.Module):
    """`multiple`: what the image sides must be divisible by inside the model. `encode` pads
    the image to it and `decode` crops the foreground back (`fgbg.layers.Padding`), so the
    likelihood reads the image's own pixels; the networks are built for the padded size
    (`height`, `width`)."""

    def __init__(self, config, height, width, multiple=None):
        super().__init__()
        self.config = config
        self.padding = Padding(height, width, multiple or config["fg_kernel"])
        self.height, self.width = self.padding.padded

    def foreground_log_likelihood(self, output, x):
        if self.config["likelihood"] == "gaussian":
            return gaussian_log_likelihood(output, x, self.config["gaussian_sd"])
        return bernoulli_log_likelihood(output, x)

    def _foreground_parts(self, latent):
        c = self.config
        encoder = ForegroundEncoder(
            self.height, self.width, c["fg_kernel"], c["fg_channels"], c["fg_hidden"], latent
        )
        decoder = ForegroundDecoder(
            encoder.grid_sizes, c["fg_kernel"], c["fg_channels"], c["fg_hidden"], latent
        )
        return encoder, decoder

    def decoder_l2_term(self):
        """decoder_l2 * the sum of squares of the decoders' weight tensors (not biases)."""
        decoders = [m for name, m in self.named_children() if name.endswith("decoder")]
        squares = sum(
            p.pow(2).sum()
            for decoder in decoders
            for name, p in decoder.named_parameters()
            if name.endswith("weight")
        )
        return self.config["decoder_l2"] * squares

    def _with_decoder_l2(self, terms):
        if self.config["decoder_l2"]:
            terms["decoder_l2"] = self.decoder_l2_term()
            terms["loss"] = terms["loss"] + terms["decoder_l2"]
        return terms

    def foreground_mean(self, output):
        """The foreground decoder's mean image from its raw output (logits for Bernoulli)."""
        return output if self.config["likelihood"] == "gaussian" else torch.sigmoid(output)

    def foreground_layer(self, x, switched_off=()):
        """The foreground output the evaluation scores: the decoded mean at the posterior
        means, with the latent blocks named in `switched_off` set to zero."""
        means = {name: mu for name, (mu, _logvar) in self.encode(x).items()}
        means |= {name: torch.zeros_like(means[name]) for name in switched_off}
        return self.foreground_mean(self.decode(means)["foreground"])

    def sample(self, posteriors, generator=None):
        return {
            key: reparameterise(mu, logvar, generator) for key, (mu, logvar) in posteriors.items()
        }
