"""How much of the background a foreground output keeps, per pixel (SPEC section 8).

- ``leakage``: the mean foreground output over the pixels of active disks that no active
  cell covers (ideal 0; the raw image about 0.84), per disk (``disk{d}``: disk d's pixels in
  the images where it is on) and pooled over every active disk (``active_disks``);
- ``pixel_ap``: average precision (scikit-learn) of the per-pixel foreground output against
  the active-cell pixel mask, within active disks (``inside_active_disks``) and outside them
  (``outside_active_disks``): 1 when the output ranks every active-cell pixel above every
  other pixel of the region.

An empty region (no active disk, or no active cell in it) gives NaN, never a made-up number.
One row per (region, metric) with the number of (image, pixel) pairs behind it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from fgbg.generate import active_cover, active_disk_cover, pixel_cell_index

SEPARATION_COLUMNS = ("region", "metric", "value", "pixels")


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def _ap(truth: np.ndarray, score: np.ndarray) -> float:
    if truth.size == 0 or truth.min() == truth.max():
        return float("nan")
    return float(average_precision_score(truth, score))


def separation_table(foreground, cell_mask, disk_mask, cell_active, disk_active) -> pd.DataFrame:
    """Leakage per disk and pooled, and pixel AP inside and outside active disks."""
    n = len(foreground)
    fg = np.asarray(foreground, dtype=np.float64).reshape(n, -1)
    cells = np.asarray(cell_mask, dtype=bool)
    disks = np.asarray(disk_mask, dtype=bool).reshape(len(disk_mask), fg.shape[1])
    disk_on = np.asarray(disk_active, dtype=bool)
    in_cell = active_cover(np.asarray(cell_active, dtype=bool), pixel_cell_index(cells))
    in_disk = active_disk_cover(disk_on, disks)
    rows = []
    for d in range(len(disks)):
        region = disk_on[:, d, None] & disks[d][None, :] & ~in_cell
        rows.append((f"disk{d}", "leakage", _mean(fg[region]), int(region.sum())))
    pooled = in_disk & ~in_cell
    rows.append(("active_disks", "leakage", _mean(fg[pooled]), int(pooled.sum())))
    for name, region in (("inside_active_disks", in_disk), ("outside_active_disks", ~in_disk)):
        rows.append((name, "pixel_ap", _ap(in_cell[region], fg[region]), int(region.sum())))
    return pd.DataFrame(rows, columns=list(SEPARATION_COLUMNS))
