"""The data card: facts measured on the written stores of one scenario.

Pixel classes, per pixel and image (they partition every pixel of every image):
- `empty`: no active cell and no active disk covers the pixel (this includes the pixels
  of inactive cells and of inactive disks);
- `cell_only`: an active cell covers it, no active disk does;
- `disk_only`: an active disk covers it, no active cell does;
- `cell_in_active_disk`: an active cell and an active disk cover it.
"Covers" uses the stored masks: a cell's square, a disk's pixels (centre within radius).
For each class the card gives the number of (image, pixel) pairs and the on-rate (the mean
of the 0/1 images), or the mean intensity when binarization is off.
"""

from __future__ import annotations

import numpy as np

from fgbg.generate import active_cover, active_disk_cover, pixel_cell_index
from fgbg.layout import overlaps
from fgbg.novelty import novelty_facts, seen_in

PIXEL_CLASSES = ("empty", "cell_only", "disk_only", "cell_in_active_disk")


def measure_split(ds, chunk_size: int = 1000) -> dict:
    """Counts, activation frequencies and per-class pixel statistics of one split."""
    cell_index = pixel_cell_index(ds["cell_mask"].values > 0)
    n_pixels = ds.sizes["y"] * ds.sizes["x"]
    disk_mask = ds["disk_mask"].values.reshape(ds.sizes["disk"], n_pixels) > 0
    n = ds.sizes["sample"]
    pixels = np.zeros(len(PIXEL_CLASSES), dtype=np.int64)
    total = np.zeros(len(PIXEL_CLASSES), dtype=np.float64)
    cell_counts = np.zeros(ds.sizes["cell"], dtype=np.int64)
    disk_counts = np.zeros(ds.sizes["disk"], dtype=np.int64)
    for start in range(0, n, chunk_size):
        window = slice(start, min(start + chunk_size, n))
        images = ds["images"][window].values.reshape(window.stop - start, -1)
        cells = ds["cell_active"][window].values
        disks = ds["disk_active"][window].values
        cell_counts += cells.sum(axis=0, dtype=np.int64)
        disk_counts += disks.sum(axis=0, dtype=np.int64)
        in_cell = active_cover(cells.astype(bool), cell_index)
        in_disk = active_disk_cover(disks, disk_mask)
        classes = (in_cell.astype(np.int64) + 2 * in_disk).ravel()
        pixels += np.bincount(classes, minlength=len(PIXEL_CLASSES))
        total += np.bincount(classes, weights=images.ravel(), minlength=len(PIXEL_CLASSES))
    binary = ds["images"].dtype == np.uint8
    value = "on_rate" if binary else "mean_intensity"
    return {
        "n_images": int(n),
        "cell_activation": {
            "count": cell_counts.tolist(),
            "frequency": (cell_counts / n).round(6).tolist(),
        },
        "disk_activation": {
            "count": disk_counts.tolist(),
            "frequency": (disk_counts / n).round(6).tolist(),
        },
        "pixel_classes": {
            name: {
                "pixels": int(count),
                value: round(float(s / count), 6) if count else None,
            }
            for name, count, s in zip(PIXEL_CLASSES, pixels, total, strict=True)
        },
    }


def layout_facts(ds) -> dict:
    """Which cells overlap which disk (a cell overlaps a disk when one of its pixels is in
    it), and the number of image pixels of each cell and disk."""
    cells, disks = ds["cell_mask"].values > 0, ds["disk_mask"].values > 0
    overlap = overlaps(cells, disks)
    return {
        "image": {"height": ds.sizes["y"], "width": ds.sizes["x"]},
        "n_cells": int(ds.sizes["cell"]),
        "n_disks": int(ds.sizes["disk"]),
        "cell_pixels": cells.sum(axis=(1, 2)).tolist(),
        "disk_pixels": disks.sum(axis=(1, 2)).tolist(),
        "cells_overlapping_disk": [
            np.flatnonzero(overlap[:, k]).tolist() for k in range(len(disks))
        ],
        "cells_outside_disks": np.flatnonzero(~overlap.any(axis=1)).tolist(),
    }


def held_out_novelty(splits: dict) -> dict:
    """For every split but train: how many of its images occur verbatim in train."""
    train = splits["train"]["images"].values
    facts = {}
    for name, ds in splits.items():
        if name != "train":
            overlap = overlaps(ds["cell_mask"].values > 0, ds["disk_mask"].values > 0)
            seen = seen_in(train, ds["images"].values)
            facts[name] = novelty_facts(seen, overlap, ds["disk_active"].values)
    return facts


def data_card(splits: dict, scenario: str) -> dict:
    """The card of one data replicate of a scenario from its opened splits
    ({"train": ds, "val": ds, "test": ds})."""
    first = next(iter(splits.values()))
    return {
        "scenario": scenario,
        "pixel_classes": {
            "empty": "no active cell and no active disk covers the pixel",
            "cell_only": "an active cell covers the pixel, no active disk does",
            "disk_only": "an active disk covers the pixel, no active cell does",
            "cell_in_active_disk": "an active cell and an active disk cover the pixel",
        },
        "generation": first.attrs["generation"],
        "seed": first.attrs["seed"],
        "layout": layout_facts(first),
        "splits": {name: measure_split(ds) for name, ds in splits.items()},
        "identical_to_a_training_image": held_out_novelty(splits),
    }
