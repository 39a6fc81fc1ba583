"""Reference methods: foreground outputs that need no training (SPEC section 8).

Each answers the question the evaluation asks of a model, "what is your foreground output
for these images?", so that it is one more row in every table:

- ``raw``: the input image itself (all the information, no separation);
- ``neuropil``: Suite2p's neuropil correction. A cell's score is its mean minus
  ``factor`` times the mean of its annulus: the pixels within ``outer`` pixels of the cell
  (square distance) that are more than ``inner`` pixels from every cell. Its pixel output
  (for the pixel metrics) is x minus ``factor`` times the mean of the cell-free pixels in the
  (2 outer + size) wide square around each pixel, the same correction applied everywhere;
- ``truth``: the true active-cell mask (a ceiling: perfect everywhere);
- ``opening``: the soft morphological opening of x by a cell-sized square
  (`fgbg.layers.soft_opening`), the filter the layered model's foreground encoder is given:
  what a fixed filter alone achieves, so that the model is judged on what it adds.

A reference knows the cells' masks (as a user who has drawn ROIs does); only ``truth``
reads the per-image activity.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from fgbg.config import schema_defaults
from fgbg.generate import active_cover, pixel_cell_index
from fgbg.layers import soft_opening


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square (Chebyshev) dilation of a 2-D bool mask by `radius` pixels."""
    if radius == 0:
        return mask.copy()
    return ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=radius)


def annuli(cell_mask: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """(cell, H, W) bool: each cell's neuropil annulus, free of every cell by `inner` pixels."""
    cells = np.asarray(cell_mask, dtype=bool)
    free = ~_dilate(cells.any(axis=0), inner)
    return np.stack([_dilate(cell, outer) & free for cell in cells])


def neuropil_scores(images, cell_mask, factor: float, inner: int, outer: int) -> np.ndarray:
    """(N, cell): cell mean minus factor x annulus mean (NaN where an annulus is empty)."""
    x = np.asarray(images, dtype=np.float64)
    cells = np.asarray(cell_mask, dtype=np.float64)
    rings = annuli(cell_mask, inner, outer).astype(np.float64)
    cell_mean = np.einsum("nyx,cyx->nc", x, cells) / cells.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        ring_mean = np.einsum("nyx,cyx->nc", x, rings) / rings.sum(axis=(1, 2))
    return cell_mean - factor * ring_mean


def neuropil_image(images, cell_mask, factor: float, inner: int, outer: int) -> np.ndarray:
    """(N, H, W): x minus factor x the local mean of the cell-free pixels around each pixel."""
    x = np.asarray(images, dtype=np.float64)
    cells = np.asarray(cell_mask, dtype=bool)
    free = (~_dilate(cells.any(axis=0), inner)).astype(np.float64)
    width = 2 * outer + _cell_side(cells)
    size = (1, width, width)
    local = ndimage.uniform_filter(x * free, size=size, mode="constant")
    weight = ndimage.uniform_filter(free[None], size=size, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        background = np.where(weight > 0, local / weight, 0.0)
    return np.clip(x - factor * background, 0.0, 1.0)


def _cell_side(cells: np.ndarray) -> int:
    rows = np.flatnonzero(cells[0].any(axis=1))
    return int(rows[-1] - rows[0] + 1) if len(rows) else 0


def reference_outputs(config: dict, dataset) -> dict:
    """The evaluation's outputs of a reference method on one split (an xarray Dataset):
    ``foreground`` (N, H, W) and, for neuropil, its own ``scores`` (N, cell)."""
    kind = config["type"]
    config = {**schema_defaults("references"), **config}
    images = dataset["images"].values
    cell_mask = dataset["cell_mask"].values.astype(bool)
    if kind == "raw":
        return {"foreground": images.astype(np.float32)}
    if kind == "truth":
        index = pixel_cell_index(cell_mask)
        active = active_cover(dataset["cell_active"].values.astype(bool), index)
        return {"foreground": active.reshape(images.shape).astype(np.float32)}
    if kind == "opening":
        x = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1)
        opened = soft_opening(x, _cell_side(cell_mask), config["sharpness"])
        return {"foreground": opened[:, 0].numpy()}
    if kind == "neuropil":
        args = (cell_mask, config["factor"], config["inner"], config["outer"])
        return {
            "foreground": neuropil_image(images, *args).astype(np.float32),
            "scores": neuropil_scores(images, *args),
        }
    raise ValueError(f"reference type {kind!r} is not one of raw, neuropil, truth, opening")
