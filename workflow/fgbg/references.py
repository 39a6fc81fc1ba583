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
- ``bayes``: the exact posterior probability that each cell is active given the image,
  from the scenario's own generative model (`fgbg.bayes`), painted on the cell's pixels:
  the ceiling of what any method can reach from the image (SPEC section 10);
- ``opening``: the soft morphological opening of x by a cell-sized square
  (`fgbg.layers.soft_opening`), the filter the layered model's foreground encoder is given:
  what a fixed filter alone achieves, so that the model is judged on what it adds;
- ``nmf``: a CNMF-style demixing (`nmf_outputs`). The training images (N, H*W) are factorised
  by scikit-learn's NMF into spatial components; a component is *foreground* when it is
  compact: the area of its support (pixels at or above ``support`` x its maximum) is at
  most ``compact`` x the cell area (cell side squared), *background* otherwise. A test
  image's activations are the non-negative least-squares fit on the fixed components; the
  foreground output is the reconstruction from the foreground components alone, clipped to
  [0, 1]. The number of components is the smallest of ``components`` whose validation
  reconstruction error (the same fit on the validation images) is within ``tolerance`` of
  the best of the grid. It knows the cell size and nothing else: no masks, no labels.
  Intensity images are read with values below 0 (noise) set to 0: NMF needs non-negative
  data.

What each method knows beyond the images is `KNOWS` (generated into the docs). Where a
reference needs the cell side (``opening``, ``nmf``) it is the data's ``cells.size`` (the
side of the split's cells) unless the reference's ``cell_size`` overrides it; the config
check stops on an override that disagrees with ``cells.size``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg, ndimage, optimize
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning

from fgbg import bayes
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


# What each method knows beyond the images (SPEC section 9), for the generated knowledge table:
# the cell size (a cell-sized kernel, filter or rule), the disk scale (an architecture sized
# to the background: pooling, a coarse grid), the cell outlines (masks) and the per-image
# activity. Models by type, references by type.
KNOWS = {
    "dual": {
        "cell size": "fg_kernel (the first convolution's kernel and stride)",
        "disk scale": "pool_size 30, the disk's diameter (background kernel, g(x)'s blocks)",
        "cell outlines": "",
        "activity": "",
    },
    "vae": {
        "cell size": "fg_kernel (the first convolution's kernel and stride)",
        "disk scale": "",
        "cell outlines": "",
        "activity": "",
    },
    "layered": {
        "cell size": "fg_kernel (patch grid) and the opening by a cell-sized square",
        "disk scale": (
            "not the diameter; that the background is coarse and flat (bg_pool 6, a flat "
            "level in a bg_grid 10 x 10 mask) and composed with the cells by a noisy OR"
        ),
        "cell outlines": "",
        "activity": "",
    },
    "raw": {"cell size": "", "disk scale": "", "cell outlines": "", "activity": ""},
    "opening": {
        "cell size": "the opening's square",
        "disk scale": "",
        "cell outlines": "",
        "activity": "",
    },
    "nmf": {
        "cell size": "the compactness rule (support area against the cell area)",
        "disk scale": "",
        "cell outlines": "",
        "activity": "",
    },
    "neuropil": {
        "cell size": "(from the outlines)",
        "disk scale": "",
        "cell outlines": "the cell masks (the ROIs) and their annuli",
        "activity": "",
    },
    "bayes": {
        "cell size": "(from the outlines)",
        "disk scale": "the disks' masks, intensities and probabilities",
        "cell outlines": "the cell masks",
        "activity": "the cells' probability, the noise and the threshold (not the states)",
    },
    "truth": {
        "cell size": "(from the outlines)",
        "disk scale": "",
        "cell outlines": "the cell masks",
        "activity": "the per-image cell activity",
    },
}


def cell_side(config: dict, dataset) -> int:
    """The cell side a reference uses: its ``cell_size`` if set, else the data's cells.size
    (the split's attrs where they hold it, else the side of its cells)."""
    if config.get("cell_size") is not None:
        return int(config["cell_size"])
    generation = getattr(dataset, "attrs", {}).get("generation") or {}
    size = (generation.get("cells") or {}).get("size")
    if size is not None:
        return int(size)
    return _cell_side(dataset["cell_mask"].values.astype(bool))


def support_areas(components: np.ndarray, support: float) -> np.ndarray:
    """(k,) pixels of each (k, pixel) component at or above `support` x its maximum."""
    peak = components.max(axis=1, keepdims=True)
    return ((components >= support * peak) & (peak > 0)).sum(axis=1)


def is_foreground(components: np.ndarray, cell: int, support: float, compact: float):
    """(k,) bool: the compact components (support area <= compact x cell area)."""
    areas = support_areas(components, support)
    return (areas > 0) & (areas <= compact * cell * cell)


def nnls_activations(images: np.ndarray, components: np.ndarray) -> np.ndarray:
    """(N, k) non-negative least squares of each (pixel,) image on the fixed (k, pixel)
    components: min ||a H - x|| over a >= 0, solved exactly per image on the k x k Cholesky
    factor of H H^T (the same minimiser, without the pixel dimension)."""
    h = np.asarray(components, dtype=np.float64)
    gram = h @ h.T
    gram[np.diag_indices_from(gram)] += 1e-10 * max(np.trace(gram), 1e-300)
    lower = linalg.cholesky(gram, lower=True)  # gram = L L^T
    rhs = linalg.solve_triangular(lower, h @ np.asarray(images, dtype=np.float64).T, lower=True)
    return np.stack([optimize.nnls(lower.T, b)[0] for b in rhs.T])


def fit_nmf(images: np.ndarray, n_components: int, random_state: int, max_iter: int):
    """(k, pixel) spatial components of (N, pixel) images (scikit-learn's coordinate-descent
    NMF, NNDSVDa start). A fixed iteration budget: the validation error moves by < 0.1 %
    between 200 and 1000 iterations on the default data, so not converging to the solver's
    tolerance is expected and not warned about."""
    model = NMF(n_components, init="nndsvda", random_state=random_state, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # float32: 2-3 times faster than float64, the same validation error to 4 digits
        model.fit(np.asarray(images, dtype=np.float32))
    return model.components_.astype(np.float64)


def reconstruction_error(images: np.ndarray, components: np.ndarray) -> float:
    """Root mean square error of the NNLS reconstruction of (N, pixel) images."""
    x = np.asarray(images, dtype=np.float64)
    return float(np.sqrt(np.mean((nnls_activations(x, components) @ components - x) ** 2)))


def nmf_outputs(config: dict, test, train, val) -> dict:
    """The nmf reference (see the module docstring): ``foreground`` (N, H, W) of the test
    images and ``info`` (the grid's validation errors, the chosen number of components, each
    component's support area and which were called foreground)."""
    config = {**schema_defaults("references"), **config}
    if train is None or val is None:
        raise ValueError("the nmf reference needs the training and validation splits")
    cell = cell_side(config, test)
    # NMF reads non-negative data: intensity images' noise below 0 is read as 0 (binary
    # images are unchanged)
    x_test = np.clip(np.asarray(_images(test), dtype=np.float64), 0, None)
    n, height, width = x_test.shape
    x_train = np.clip(np.asarray(_images(train), dtype=np.float32), 0, None)
    x_train = x_train.reshape(len(x_train), -1)
    x_val = np.clip(np.asarray(_images(val), dtype=np.float64), 0, None)
    x_val = x_val.reshape(len(x_val), -1)
    fits, errors = {}, {}
    most = min(x_train.shape)  # NNDSVD starts need k <= min(images, pixels)
    for k in sorted({min(k, most) for k in config["components"]}):
        fits[k] = fit_nmf(x_train, k, config["random_state"], config["max_iter"])
        errors[k] = reconstruction_error(x_val, fits[k])
    best = min(errors.values())
    chosen = min(k for k, e in errors.items() if e <= (1 + config["tolerance"]) * best)
    components = fits[chosen]
    foreground = is_foreground(components, cell, config["support"], config["compact"])
    activations = nnls_activations(x_test.reshape(n, -1), components)
    output = activations[:, foreground] @ components[foreground]
    return {
        "foreground": np.clip(output, 0.0, 1.0).reshape(n, height, width).astype(np.float32),
        "info": {
            "cell_size": cell,
            "validation_rmse": {str(k): round(e, 6) for k, e in errors.items()},
            "n_components": int(chosen),
            "support_areas": support_areas(components, config["support"]).tolist(),
            "foreground_components": np.flatnonzero(foreground).tolist(),
        },
    }


def _images(split):
    return split["images"].values if hasattr(split, "variables") else split


def reference_outputs(config: dict, dataset, train=None, val=None) -> dict:
    """The evaluation's outputs of a reference method on one split (an xarray Dataset):
    ``foreground`` (N, H, W), for neuropil its own ``scores`` (N, cell), for nmf an ``info``
    dict for the evaluation's record. `train` and `val` (Datasets or (N, H, W) arrays): the
    training and validation splits of the same data replicate, which only nmf reads."""
    kind = config["type"]
    config = {**schema_defaults("references"), **config}
    images = dataset["images"].values
    cell_mask = dataset["cell_mask"].values.astype(bool)
    if kind == "nmf":
        return nmf_outputs(config, dataset, train, val)
    if kind == "raw":
        return {"foreground": images.astype(np.float32)}
    if kind == "truth":
        index = pixel_cell_index(cell_mask)
        active = active_cover(dataset["cell_active"].values.astype(bool), index)
        return {"foreground": active.reshape(images.shape).astype(np.float32)}
    if kind == "bayes":
        return {"foreground": bayes.foreground(images, dataset.attrs["generation"])}
    if kind == "opening":
        x = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1)
        opened = soft_opening(x, cell_side(config, dataset), config["sharpness"])
        return {"foreground": opened[:, 0].numpy()}
    if kind == "neuropil":
        args = (cell_mask, config["factor"], config["inner"], config["outer"])
        return {
            "foreground": neuropil_image(images, *args).astype(np.float32),
            "scores": neuropil_scores(images, *args),
        }
    raise ValueError(
        f"reference type {kind!r} is not one of raw, neuropil, truth, bayes, opening, nmf"
    )
