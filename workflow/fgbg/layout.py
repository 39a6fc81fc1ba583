"""Geometry of a scenario: cell and disk masks and which cells overlap which disks."""

from __future__ import annotations

import numpy as np


def cell_masks(height: int, width: int, size: int, positions) -> np.ndarray:
    """Boolean masks (cell, y, x) of square cells with top-left corners `positions`."""
    masks = np.zeros((len(positions), height, width), dtype=bool)
    for k, (row, col) in enumerate(positions):
        masks[k, row : row + size, col : col + size] = True
    return masks


def disk_masks(height: int, width: int, disks) -> np.ndarray:
    """Boolean masks (disk, y, x): a pixel is in a disk when its centre is within the radius."""
    yy, xx = np.mgrid[:height, :width] + 0.5
    masks = np.zeros((len(disks), height, width), dtype=bool)
    for k, disk in enumerate(disks):
        cy, cx = disk["center"]
        masks[k] = (yy - cy) ** 2 + (xx - cx) ** 2 <= (disk["diameter"] / 2) ** 2
    return masks


def overlaps(cells: np.ndarray, disks: np.ndarray) -> np.ndarray:
    """Boolean (cell, disk): the cell has at least one pixel inside the disk."""
    return np.einsum("cyx,dyx->cd", cells.astype(np.int32), disks.astype(np.int32)) > 0


def scenario_masks(params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Cell and disk masks of a resolved scenario (see fgbg.config.scenario_params)."""
    height, width = params["image"]["height"], params["image"]["width"]
    cells = cell_masks(height, width, params["cells"]["size"], params["cells"]["positions"])
    return cells, disk_masks(height, width, params["disks"])
