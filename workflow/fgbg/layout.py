"""Geometry of a scenario: cell and disk masks and which cells overlap which disks."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr


def cell_masks(height: int, width: int, size: int, positions) -> np.ndarray:
    """Boolean masks (cell, y, x) of square cells with top-left corners `positions`."""
    masks = np.zeros((len(positions), height, width), dtype=bool)
    for k, (row, col) in enumerate(positions):
        masks[k, row : row + size, col : col + size] = True
    return masks


def _squared_distances(height: int, width: int, disk) -> np.ndarray:
    """(y, x): each pixel centre's squared distance from the disk's centre."""
    yy, xx = np.mgrid[:height, :width] + 0.5
    cy, cx = disk["center"]
    return (yy - cy) ** 2 + (xx - cx) ** 2


def disk_masks(height: int, width: int, disks) -> np.ndarray:
    """Boolean masks (disk, y, x): a pixel is in a disk when its centre is within the radius."""
    masks = np.zeros((len(disks), height, width), dtype=bool)
    for k, disk in enumerate(disks):
        masks[k] = _squared_distances(height, width, disk) <= (disk["diameter"] / 2) ** 2
    return masks


def disk_profiles(height: int, width: int, disks) -> np.ndarray:
    """Float32 (disk, y, x) in [0, 1]: the share of a disk's intensity each pixel gets. A
    hard disk (`edge` 0) is its mask; with `edge` e > 0 the profile is Phi((R - r) / e), r
    the pixel centre's distance from the disk's centre and R its radius: half the
    intensity at the radius, 84 % one edge width inside, 16 % one outside. It is the
    profile of a straight hard edge blurred by a Gaussian of standard deviation e, the way
    out-of-focus light fades (a disk blurred so differs by at most 0.08 for R >= 3 e). The
    mask (r <= R, where the profile is at least one half) stays the disk's region for the
    noise and the evaluation."""
    profiles = disk_masks(height, width, disks).astype(np.float32)  # the hard disks
    for k, disk in enumerate(disks):
        if edge := disk.get("edge", 0):
            r = np.sqrt(_squared_distances(height, width, disk))
            profiles[k] = ndtr((disk["diameter"] / 2 - r) / edge)
    return profiles


def overlaps(cells: np.ndarray, disks: np.ndarray) -> np.ndarray:
    """Boolean (cell, disk): the cell has at least one pixel inside the disk."""
    return np.einsum("cyx,dyx->cd", cells.astype(np.int32), disks.astype(np.int32)) > 0


def scenario_masks(params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Cell and disk masks of a resolved scenario (see fgbg.config.scenario_params)."""
    height, width = params["image"]["height"], params["image"]["width"]
    cells = cell_masks(height, width, params["cells"]["size"], params["cells"]["positions"])
    return cells, disk_masks(height, width, params["disks"])
