"""How much of the background a foreground output keeps, per pixel (SPEC section 8).

- ``leakage``: the mean foreground output over the pixels of active disks that no active
  cell covers (ideal 0; the raw image about 0.84), per disk (``disk{d}``: disk d's pixels in
  the images where it is on) and pooled over every active disk (``active_disks``);
- ``leakage_ratio``: the same numerator divided by the mean foreground output over the
  active-cell pixels *inside the same active disks* (per disk: disk d's pixels covered by an
  active cell, in the images where disk d is on; pooled: every active-cell pixel inside an
  active disk). Scale-free: multiplying an output by a constant leaves it unchanged, whereas
  ``leakage`` falls with the constant (SPEC section 9). The denominator is taken under the
  disk rather than over the whole image so that an output that dims everything under the
  disk (cells included) does not look separated: ideal 0, the raw image about 0.84 (disk
  pixels on about 84 % of the time, cell pixels always), 1 when background pixels are drawn
  as bright as cells; NaN when no active cell lies in the active disk, or the cells' mean
  output is 0;
- ``pixel_ap``: average precision (scikit-learn) of the per-pixel foreground output against
  the active-cell pixel mask, within active disks (``inside_active_disks``) and outside them
  (``outside_active_disks``): 1 when the output ranks every active-cell pixel above every
  other pixel of the region.

An empty region (no active disk, or no active cell in it) gives NaN, never a made-up number.
One row per (region, metric) with the number of (image, pixel) pairs behind it (for
``leakage_ratio``, those of the numerator and the denominator together).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from fgbg.generate import active_cover, active_disk_cover, pixel_cell_index

SEPARATION_COLUMNS = ("region", "metric", "value", "pixels")


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def _ratio(fg: np.ndarray, background: np.ndarray, cells: np.ndarray) -> tuple[float, int]:
    """Mean of fg over `background` / mean over `cells` (NaN where either is undefined or the
    cells' mean is 0), and the number of pixels behind it."""
    top, bottom = _mean(fg[background]), _mean(fg[cells])
    pixels = int(background.sum() + cells.sum())
    if np.isnan(top) or np.isnan(bottom) or bottom <= 0:
        return float("nan"), pixels
    return top / bottom, pixels


def _ap(truth: np.ndarray, score: np.ndarray) -> float:
    if truth.size == 0 or truth.min() == truth.max():
        return float("nan")
    return float(average_precision_score(truth, score))


def separation_table(foreground, cell_mask, disk_mask, cell_active, disk_active) -> pd.DataFrame:
    """Leakage and leakage ratio per disk and pooled, and pixel AP inside and outside active
    disks."""
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
        under = disk_on[:, d, None] & disks[d][None, :] & in_cell
        rows.append((f"disk{d}", "leakage", _mean(fg[region]), int(region.sum())))
        rows.append((f"disk{d}", "leakage_ratio", *_ratio(fg, region, under)))
    pooled = in_disk & ~in_cell
    rows.append(("active_disks", "leakage", _mean(fg[pooled]), int(pooled.sum())))
    rows.append(("active_disks", "leakage_ratio", *_ratio(fg, pooled, in_disk & in_cell)))
    for name, region in (("inside_active_disks", in_disk), ("outside_active_disks", ~in_disk)):
        rows.append((name, "pixel_ap", _ap(in_cell[region], fg[region]), int(region.sum())))
    return pd.DataFrame(rows, columns=list(SEPARATION_COLUMNS))
