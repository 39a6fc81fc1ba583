"""The background layer: one global latent decoded to a flat level inside a coarse,
sharp-edged shape; b = sigmoid(level) sigmoid(BG_SHARPNESS x mask), the mask a cubic
B-spline over a coarse grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fgbg.models.layered.noisy_or import logit_of_product

BG_SHARPNESS = 8.0  # slope of the mask's edge: the background is flat inside its shape


def _bspline_upsampling(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in): the weights of a cubic B-spline whose control points are the
    coarse nodes (node centres placed as F.interpolate's with align_corners False; nodes
    beyond the border repeat the border's). Smoother than bilinear interpolation, and
    its weights are never negative, unlike cubic interpolation's: a node's pull never
    changes sign with the distance (docs/studies/geometry-07-bspline.md)."""
    pos = (torch.arange(size_out, dtype=torch.float64) + 0.5) * size_in / size_out - 0.5
    weights = torch.zeros(size_out, size_in, dtype=torch.float64)
    rows = torch.arange(size_out)
    for k in range(-1, 3):
        node = pos.floor().long() + k
        t = (pos - node).abs()
        near, far = 2 / 3 - t**2 + t**3 / 2, (2 - t).clamp_min(0) ** 3 / 6
        weights.index_put_(
            (rows, node.clamp(0, size_in - 1)), torch.where(t < 1, near, far), accumulate=True
        )
    return weights.float()


class Background(nn.Module):
    """An MLP encoder over the image average-pooled by `bg_pool` gives a Gaussian posterior
    over `bg_latent` dimensions; an MLP decoder gives a level logit and a `bg_grid` square
    mask of logits, upsampled to the image by a cubic B-spline. The background cannot
    draw a cell: it is flat inside a shape no finer than the coarse grid. The mask's logits
    start at `mask_start` (the composition's `MASK_START`)."""

    def __init__(self, config: dict, height: int, width: int, mask_start: float):
        super().__init__()
        self.pool, self.grid = config["bg_pool"], config["bg_grid"]
        hidden, e = config["bg_width"], config["bg_latent"]
        pooled = (height // self.pool) * (width // self.pool)
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(pooled, hidden), nn.ReLU(), nn.Linear(hidden, 2 * e)
        )
        self.decoder = nn.Sequential(
            nn.Linear(e, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 1 + self.grid**2),  # the level, then the mask
        )  # fmt: skip
        self.register_buffer("upsample_rows", _bspline_upsampling(self.grid, height), False)
        self.register_buffer("upsample_cols", _bspline_upsampling(self.grid, width), False)
        with torch.no_grad():  # starts nearly empty: level sigmoid(-4), mask at mask_start
            self.decoder[-1].bias.fill_(-4.0)
            self.decoder[-1].bias[1:].fill_(mask_start)

    def encode(self, x):
        """(mu, logvar), each (N, bg_latent)."""
        return self.encoder(F.avg_pool2d(x, self.pool)).chunk(2, 1)

    def logits(self, z):
        """b's logits (N, 1, H, W) for z (N, bg_latent)."""
        out, g = self.decoder(z), self.grid
        level, mask = out[:, :1].view(-1, 1, 1, 1), self.upsample(out[:, 1:].view(-1, 1, g, g))
        return logit_of_product(F.logsigmoid(level) + F.logsigmoid(BG_SHARPNESS * mask))

    def upsample(self, coarse):
        """(N, 1, g, g) -> (N, 1, H, W), the B-spline as two small matrix products (the
        weights are fixed, so no interpolation kernel is needed, forward or backward)."""
        return self.upsample_rows @ coarse @ self.upsample_cols.t()
