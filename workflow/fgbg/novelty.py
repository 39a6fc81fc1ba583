"""Which held-out images also occur, byte for byte, in the training split.

Disk-off images are noise-free, so a scenario has only 2^(number of cells) of them and many
held-out disk-off images are exact copies of training images: rates on them measure
memory as much as generalisation. Every held-out image is marked `novel` or not.
"""

from __future__ import annotations

import hashlib

import numpy as np

from fgbg.metrics.rates import STRATA, strata


def _digests(images: np.ndarray) -> list[bytes]:
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def seen_in(training_images: np.ndarray, images: np.ndarray) -> np.ndarray:
    """(N,) bool: image i is identical to some training image."""
    known = set(_digests(training_images))
    return np.array([d in known for d in _digests(images)], dtype=bool)


def novelty_facts(seen: np.ndarray, overlap: np.ndarray, disk_active: np.ndarray) -> dict:
    """Fractions of held-out images identical to a training image: all images, by
    background state of the image, and per (image, cell) stratum (SPEC section 4)."""
    seen = np.asarray(seen, dtype=bool)
    any_disk_on = np.asarray(disk_active, dtype=bool).any(axis=1)
    per_cell = strata(overlap, disk_active)  # (sample, cell)
    seen_cells = np.broadcast_to(seen[:, None], per_cell.shape)

    def fraction(mask):
        return round(float(mask.mean()), 6) if mask.size else None

    return {
        "images": int(len(seen)),
        "seen_in_train": int(seen.sum()),
        "fraction_seen": fraction(seen),
        "by_background": {
            "all_disks_off": fraction(seen[~any_disk_on]),
            "some_disk_on": fraction(seen[any_disk_on]),
        },
        "by_stratum": {name: fraction(seen_cells[per_cell == name]) for name in STRATA},
    }
