"""Convolutions whose kernel equals their stride, written as a reshape and one matrix product.

A convolution with kernel k and stride k (no padding) sees each k x k patch exactly once,
so it is a linear map applied to every patch: reshape the image into patches and multiply.
On a CPU this is faster than the generic convolution kernels and gives the same numbers.
`Padding` lets such a model take an image whose sides its kernels do not divide. The
parameters have the shapes of `nn.Conv2d` / `nn.ConvTranspose2d`, are initialised the
same way, and a state dict moves between the two forms unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _patches(x: torch.Tensor, k: int) -> tuple[torch.Tensor, int, int]:
    """(N, C, H, W) -> (N * h * w, C * k * k) with h = H // k, w = W // k (the rest is cut)."""
    n, c, height, width = x.shape
    h, w = height // k, width // k
    x = x[:, :, : h * k, : w * k].reshape(n, c, h, k, w, k)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(n * h * w, c * k * k), h, w


class PatchConv2d(nn.Module):
    """`nn.Conv2d(in_channels, out_channels, kernel_size=k, stride=k)` as patchify + matmul."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=kernel_size)
        self.kernel_size = kernel_size
        self.weight, self.bias = conv.weight, conv.bias  # (out, in, k, k), (out,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        patches, h, w = _patches(x, self.kernel_size)
        out = torch.addmm(self.bias, patches, self.weight.flatten(1).t())  # (n*h*w, out)
        return out.view(n, h, w, -1).permute(0, 3, 1, 2)


class PatchConvTranspose2d(nn.Module):
    """`nn.ConvTranspose2d(in_channels, out_channels, kernel_size=k, stride=k)` as matmul +
    un-patchify: every input position paints its own k x k output patch."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=kernel_size)
        self.kernel_size = kernel_size
        self.weight, self.bias = conv.weight, conv.bias  # (in, out, k, k), (out,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k = self.kernel_size
        out_channels = self.weight.shape[1]
        rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
        bias = self.bias.repeat_interleave(k * k)
        out = torch.addmm(bias, rows, self.weight.flatten(1))  # (n*h*w, out*k*k)
        out = out.view(n, h, w, out_channels, k, k).permute(0, 3, 1, 4, 2, 5)
        return out.reshape(n, out_channels, h * k, w * k)


def _sliding(x: torch.Tensor, k: int, op, dim: int) -> torch.Tensor:
    """`op` (add, maximum) over every run of k neighbours along `dim` (length L -> L - k + 1):
    k - 1 elementwise ops on shifted views, several times faster on a CPU than stride-1
    pooling kernels, and exact for maxima and for sums of 0/1 pixels."""
    n = x.shape[dim] - k + 1
    out = x.narrow(dim, 0, n)
    for i in range(1, k):
        out = op(out, x.narrow(dim, i, n))
    return out


def soft_opening(x: torch.Tensor, k: int, sharpness: float = 72.0) -> torch.Tensor:
    """The morphological opening of (N, 1, H, W) images by a k x k square, soft: a window
    scores relu(1 - sharpness (1 - its mean)) (at 72, one off pixel in a 6 x 6 window gives
    0), and a pixel takes the best window covering it. Marks every pixel covered by a hole-free
    k x k window: a cell, but hardly ever a noisy background (0.84^36 = 0.002 for a 6 x 6
    window of a disk). Parameter-free: a k x k window sum, then a k x k window maximum, each
    as two separable passes."""
    sums = _sliding(_sliding(x, k, torch.add, 2), k, torch.add, 3)
    full = torch.relu(1 - sharpness * (1 - sums / (k * k)))
    full = F.pad(full, (k - 1,) * 4)
    return _sliding(_sliding(full, k, torch.maximum, 2), k, torch.maximum, 3)


class Padding:
    """Any H x W image for a model whose parts need sides divisible by `multiple` (a patch
    convolution's kernel, a pooling): zeros below and to the right up to the next multiple
    (`pad`), and every output image cut back to H x W (`crop`). With sides already divisible
    both are the identity, so such images train exactly as before."""

    def __init__(self, height: int, width: int, multiple: int):
        self.size = (height, width)
        self.padded = tuple(-(-side // multiple) * multiple for side in self.size)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        (h, w), (ph, pw) = self.size, self.padded
        return x if (ph, pw) == (h, w) else F.pad(x, (0, pw - w, 0, ph - h))

    def crop(self, y: torch.Tensor) -> torch.Tensor:
        h, w = self.size
        return y if y.shape[-2:] == (h, w) else y[..., :h, :w]
