"""The exact Bayes posterior that each cell is active given an image: the oracle.

It knows everything the generator (fgbg.generate.Sampler) knows: the cell and disk masks,
intensities and activation probabilities, the noise mean, sd and region, the threshold.
The model, as Sampler draws it: cells are active independently with probability p, disk j
with probability p_j; a pixel's intensity is cell intensity (if an active cell covers it)
plus the light of each active disk (its intensity times its profile at the pixel: 1 inside
and 0 outside a hard disk, a smooth fall-off for a soft edge; float32, as Sampler adds
them); noise N(mean, sd) is added once to every pixel (region `everywhere`) or to the
pixels covered by at least one active disk (region `background`); a binary pixel is on
when the result exceeds the threshold. Given all states the pixels are independent: a
noisy pixel is on with probability Phi((I + mean - threshold) / sd), a noise-free one
(or any pixel when sd = 0) is on exactly when its value exceeds the threshold (0 or 1).

The computation: pixels fall into groups with the same covering cell, disks and disk light,
so one image reduces to per-group statistics. For each of the 2^n_disks disk states s the
likelihood factorises over cells (cells never overlap: the generator refuses them), so

    P(x | s) = P(background pixels | s) * prod_k sum_c P(c) P(pixels of cell k | c, s)
    P(cell k active | x) = sum_s P(s | x) P(c_k = 1 | x, s),

all in log space with exact -inf for impossible events (no clipping, no NaN). An image
that no state can produce raises ValueError.

Float images (binarize.enabled false): a noisy pixel has the Gaussian density; a noise-free
pixel equals its intensity exactly (a point mass). A pixel within ATOM_TOLERANCE (tol) of
one of its group's possible exact values a is read as the event |x - a| <= tol: probability
1 under a hypothesis whose exact value is a, 0 under another exact value, and 2 tol times
the density under a noisy hypothesis (not 0: a noisy pixel lands that close about once in
10^6, so most datasets have some). Any other pixel has its density under the noisy
hypotheses and 0 under the exact ones.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, ndtr, xlogy

from fgbg.generate import Sampler, active_cover, active_disk_cover

MAX_DISKS = 10  # 2^10 disk states: about 10 s per 1000 100 x 100 images
ATOM_TOLERANCE = 1e-6  # float images: a noise-free pixel's value, reproduced in float32
CHUNK_ELEMENTS = 2**22  # images are processed in chunks of about this many table entries


def _sampler(params: dict) -> Sampler:
    if len(params["disks"]) > MAX_DISKS:
        raise ValueError(
            f"fgbg.bayes: {len(params['disks'])} disks, more than MAX_DISKS = {MAX_DISKS} "
            "(the posterior enumerates 2^n_disks disk states)"
        )
    try:
        return Sampler(params)
    except ValueError as error:  # overlapping cells: the generator defines no image for them
        raise ValueError(f"fgbg.bayes: cells must not overlap ({error})") from error


def _pixel_model(sampler: Sampler, cell_active, disk_active):
    """(sample, pixel) float32 value and bool gaussian: the pixel is value + N(0, sd) noise
    when gaussian, else exactly value. Composed as Sampler.block composes it."""
    intensity = active_cover(cell_active, sampler.cell_index) * sampler.cell_intensity
    for k, signal in enumerate(sampler.disk_signal):
        intensity += disk_active[:, k, None] * signal
    if sampler.everywhere:
        noisy = np.ones(intensity.shape, dtype=bool)
    else:
        noisy = active_disk_cover(disk_active, sampler.disk_flat)
    value = np.where(noisy, intensity + sampler.noise_mean, intensity)
    return value, noisy & (sampler.noise_sd > 0)


def _on_off(sampler: Sampler, value, gaussian):
    """P(pixel on) and P(pixel off), each computed directly (no 1 - p cancellation)."""
    sd = float(sampler.noise_sd) if sampler.noise_sd > 0 else 1.0
    z = (value.astype(np.float64) - float(sampler.threshold)) / sd
    above = value > sampler.threshold  # float32 comparison, as Sampler binarises
    return np.where(gaussian, ndtr(z), above), np.where(gaussian, ndtr(-z), ~above)


def pixel_on_probability(params: dict, cell_active, disk_active) -> np.ndarray:
    """P(pixel on | cell states, disk states) for every pixel: (..., height, width) float64.

    `cell_active` is (n_cells,) or (N, n_cells) and `disk_active` (n_disks,) or (N, n_disks)
    0/1 or bool; 1-D inputs give one (height, width) map.
    """
    sampler = _sampler(params)
    cells, disks = np.asarray(cell_active, bool), np.asarray(disk_active, bool)
    single = cells.ndim == 1 and disks.ndim == 1
    cells, disks = np.atleast_2d(cells), np.atleast_2d(disks)
    n = max(len(cells), len(disks))
    cells = np.broadcast_to(cells, (n, cells.shape[1]))
    disks = np.broadcast_to(disks, (n, disks.shape[1]))
    on = _on_off(sampler, *_pixel_model(sampler, cells, disks))[0]
    on = on.reshape(n, sampler.height, sampler.width)
    return on[0] if single else on


def _group_sum(values, order, starts):
    """Sum (image, pixel, ...) over the pixels of each group: (image, group, ...)."""
    return np.add.reduceat(values[:, order], starts, axis=1)


def _log_likelihoods(images, sampler, group, value, gaussian):
    """(image, disk state, group, cell state) log P(the group's pixels | states)."""
    order = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[order], np.arange(value.shape[1]))
    size = np.bincount(group).astype(np.float64)[:, None]  # (group, 1)
    x = images.reshape(len(images), -1)
    if sampler.binarize:
        on = _group_sum(x.astype(np.float64), order, starts)[:, None, :, None]
        p_on, p_off = _on_off(sampler, value, gaussian)
        return xlogy(on, p_on) + xlogy(size - on, p_off)
    # float images: exact values (atoms) and Gaussian densities; inf pads a never-hit atom
    atoms = np.append(np.unique(value[~gaussian]), np.inf)
    index = np.minimum(np.searchsorted(atoms, value), len(atoms) - 1)  # (state, group, c)
    groups = np.broadcast_to(np.arange(value.shape[1])[:, None], value.shape)
    possible = np.zeros((value.shape[1], len(atoms)))  # (group, atom): an atom of the group
    possible[groups[~gaussian], index[~gaussian]] = 1
    x = x.astype(np.float64)
    hits = _group_sum(
        (np.abs(x[:, :, None] - atoms) <= ATOM_TOLERANCE).astype(float), order, starts
    )
    exact = np.where(hits[:, groups, index] == size, 0.0, -np.inf)
    sd = float(sampler.noise_sd) if sampler.noise_sd > 0 else 1.0
    s1, s2 = _group_sum(x, order, starts), _group_sum(x * x, order, starts)
    mu = value.astype(np.float64)
    square = s2[:, None, :, None] - 2 * mu * s1[:, None, :, None] + size * mu**2
    normal = -size * np.log(sd * np.sqrt(2 * np.pi)) - square / (2 * sd**2)
    normal += (hits * possible).sum(-1)[:, None, :, None] * np.log(2 * ATOM_TOLERANCE)
    return np.where(gaussian, normal, exact)


def cell_posteriors(images, params: dict) -> np.ndarray:
    """(N, n_cells) float64: P(cell k active | image) under the scenario's generative model.

    `images` is (N, height, width): 0/1 when binarize.enabled, else float intensities.
    """
    return _cell_posteriors(np.asarray(images), _sampler(params))


def _cell_posteriors(images: np.ndarray, sampler: Sampler) -> np.ndarray:
    if images.ndim != 3 or images.shape[1:] != (sampler.height, sampler.width):
        raise ValueError(f"fgbg.bayes: images of shape {images.shape}, expected (N, H, W)")
    if sampler.binarize and not np.isin(images, (0, 1)).all():
        raise ValueError("fgbg.bayes: binarize.enabled but the images are not 0/1")
    n_cells, n_disks = len(sampler.cell_masks), len(sampler.disk_masks)
    states = (np.arange(2**n_disks)[:, None] >> np.arange(n_disks)) & 1  # (state, disk)
    # pixel groups: same covering cell (n_cells for none), same covering disks and the same
    # light from each disk (a soft-edged disk's profile varies from pixel to pixel)
    key = np.column_stack(
        [sampler.cell_index, *sampler.disk_flat, *(s.view(np.int32) for s in sampler.disk_signal)]
    )
    keys, first, group = np.unique(key, axis=0, return_index=True, return_inverse=True)
    group, group_cell = group.reshape(-1), keys[:, 0]  # sorted: cell k's groups consecutive
    # every (cell state, disk state) hypothesis for a representative pixel of each group
    cells = np.repeat(np.array([[0], [1]], dtype=bool), len(states), axis=0)
    cells = np.broadcast_to(cells, (len(cells), n_cells))
    value, gaussian = _pixel_model(sampler, cells, np.tile(states, (2, 1)).astype(bool))
    value, gaussian = (
        a[:, first].reshape(2, len(states), -1).transpose(1, 2, 0) for a in (value, gaussian)
    )
    p, p_disk = sampler.cell_p, sampler.disk_p
    with np.errstate(divide="ignore"):
        log_cell = np.log([1 - p, p])
    log_states = (xlogy(states, p_disk) + xlogy(1 - states, 1 - p_disk)).sum(1)
    inside = group_cell < n_cells
    starts = np.searchsorted(group_cell[inside], np.arange(n_cells))
    chunk = max(1, CHUNK_ELEMENTS // (value.size + len(key) * (len(states) + 1)))
    out = np.empty((len(images), n_cells))
    for lo in range(0, len(images), chunk):
        ll = _log_likelihoods(images[lo : lo + chunk], sampler, group, value, gaussian)
        background = ll[:, :, ~inside, 0].sum(-1)  # (image, state)
        joint = np.add.reduceat(ll[:, :, inside], starts, axis=2) + log_cell  # (i, s, k, c)
        cell = np.logaddexp(joint[..., 0], joint[..., 1])  # log P(cell k's pixels | s)
        with np.errstate(invalid="ignore"):
            active = np.where(cell > -np.inf, np.exp(joint[..., 1] - cell), 0.0)
        log_joint = log_states + background + cell.sum(-1)  # log P(x, s)
        evidence = logsumexp(log_joint, axis=1)
        if not np.isfinite(evidence).all():
            bad = lo + int(np.flatnonzero(~np.isfinite(evidence))[0])
            raise ValueError(f"fgbg.bayes: image {bad} is impossible under the scenario's model")
        out[lo : lo + chunk] = np.einsum(
            "is,isk->ik", np.exp(log_joint - evidence[:, None]), active
        )
    return np.clip(out, 0.0, 1.0)  # rounding can leave 1 + 1e-15


def foreground(images, params: dict) -> np.ndarray:
    """(N, height, width) float32: each cell's posterior on its pixels, 0 elsewhere (cells
    never overlap, so each pixel shows at most one cell's posterior)."""
    sampler = _sampler(params)
    posterior = _cell_posteriors(np.asarray(images), sampler)
    padded = np.concatenate([posterior, np.zeros((len(posterior), 1))], axis=1)
    painted = padded[:, sampler.cell_index].astype(np.float32)
    return painted.reshape(len(posterior), sampler.height, sampler.width)
