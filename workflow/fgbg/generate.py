"""Vectorised generation of one split of a scenario's synthetic images.

Every image is drawn from its generation block's own random stream, so the bytes depend
on the config, the data seed, the scenario name and the split only: not on `chunk_size`
(how many images are written at a time) and not on `n` (the first 1000 images of a
2000-image split are the 1000-image split). Block `b` of split `s` of scenario `name` uses

    numpy.random.SeedSequence(seed, spawn_key=(scenario_key(name), SPLIT_KEYS[s], b))

which is the child `(scenario_key, split, b)` of `SeedSequence(seed)` as `spawn` would give
it: streams of different scenarios, splits and blocks are independent by construction.
`seed` is the data seed, or [data seed, replicate] for the per-seed data replicates
(`data_seed`): each replicate is an independent draw of the whole scenario.
Within a block the draws come in a fixed order: cell uniforms (block, cell), disk uniforms
(block, disk), then standard normals for the noisy pixels (block, pixel).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields

import numpy as np

from fgbg.layout import disk_profiles, scenario_masks

BLOCK_SIZE = 100  # images per random stream; part of the data identity, like the seed
SPLIT_KEYS = {"train": 0, "test": 1, "val": 2}


def scenario_key(name: str) -> int:
    """A stable 64-bit integer for a scenario name (sha256; Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def data_seed(base: int, replicate: int | None) -> int | list[int]:
    """The entropy of one data replicate: `base` itself (the one shared dataset), or
    [base, replicate] (an independent dataset per training seed)."""
    return base if replicate is None else [base, replicate]


def block_stream(seed, scenario: str, split: str, block: int) -> np.random.Generator:
    key = (scenario_key(scenario), SPLIT_KEYS[split], block)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


@dataclass
class Batch:
    """Consecutive images of a split with their ground truth."""

    images: np.ndarray  # (sample, y, x) uint8 0/1, or float32 when binarize is off
    cell_active: np.ndarray  # (sample, cell) uint8
    disk_active: np.ndarray  # (sample, disk) uint8


_FIELDS = [f.name for f in fields(Batch)]


def pixel_cell_index(cell_masks: np.ndarray) -> np.ndarray:
    """Flat (pixel,) map to the index of the cell covering each pixel, len(cells) for none.
    Cells never overlap (fgbg.config checks it), so one index per pixel suffices."""
    if cell_masks.sum(axis=0).max(initial=0) > 1:
        raise ValueError("cells overlap")
    index = np.full(cell_masks[0].size, len(cell_masks), dtype=np.intp)
    for k, mask in enumerate(cell_masks):
        index[mask.ravel()] = k
    return index


def active_cover(active: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(sample, pixel) bool: an active cell covers the pixel. `active` is (sample, cell)."""
    padded = np.zeros((len(active), active.shape[1] + 1), dtype=bool)
    padded[:, :-1] = active
    return padded[:, index]


def active_disk_cover(active: np.ndarray, disks_flat: np.ndarray) -> np.ndarray:
    """(sample, pixel) bool: an active disk covers the pixel. `disks_flat` is (disk, pixel)."""
    covered = np.zeros((len(active), disks_flat.shape[1]), dtype=bool)
    for k, mask in enumerate(disks_flat):
        covered |= active[:, k, None].astype(bool) & mask
    return covered


class Sampler:
    """Draws images of one resolved scenario (see fgbg.config.scenario_params).

    Plain broadcasting and indexing, no matrix products: BLAS threads slow down badly on a
    busy machine, and there are only a few disks to loop over.
    """

    def __init__(self, params: dict):
        self.params = params
        self.height, self.width = params["image"]["height"], params["image"]["width"]
        cells, disks = scenario_masks(params)
        self.cell_masks, self.disk_masks = cells, disks
        n_pixels = self.height * self.width
        self.cell_index = pixel_cell_index(cells)
        self.cell_intensity = np.float32(params["cells"]["intensity"])
        self.disk_flat = disks.reshape(len(disks), n_pixels)
        profiles = disk_profiles(self.height, self.width, params["disks"])
        self.disk_signal = [  # what an active disk adds to each pixel (0 off its profile)
            (np.float32(d["intensity"]) * profile).ravel()
            for profile, d in zip(profiles, params["disks"], strict=True)
        ]
        self.cell_p = float(params["cells"]["probability"])
        self.disk_p = np.array([d["probability"] for d in params["disks"]])
        noise = params["noise"]
        self.noise_mean, self.noise_sd = np.float32(noise["mean"]), np.float32(noise["sd"])
        self.everywhere = noise["region"] == "everywhere"
        # Only pixels that some disk covers can get background noise: draw only for those.
        self.noise_pixels = (
            np.arange(n_pixels) if self.everywhere else np.flatnonzero(disks.any(axis=0))
        )
        self.binarize = params["binarize"]["enabled"]
        self.threshold = np.float32(params["binarize"]["threshold"])

    def block(self, rng: np.random.Generator, size: int = BLOCK_SIZE) -> Batch:
        cell_active = rng.random((size, len(self.cell_masks))) < self.cell_p
        disk_active = rng.random((size, len(self.disk_masks))) < self.disk_p
        noise = rng.standard_normal((size, len(self.noise_pixels)), dtype=np.float32)
        noise *= self.noise_sd
        noise += self.noise_mean
        intensity = active_cover(cell_active, self.cell_index) * self.cell_intensity
        for k, signal in enumerate(self.disk_signal):
            intensity += disk_active[:, k, None] * signal
        if self.everywhere:
            intensity += noise
        else:
            covered = active_disk_cover(disk_active, self.disk_flat[:, self.noise_pixels])
            intensity[:, self.noise_pixels] += np.where(covered, noise, np.float32(0))
        if self.binarize:
            images = (intensity > self.threshold).astype(np.uint8)
        else:
            images = intensity
        return Batch(
            images=images.reshape(size, self.height, self.width),
            cell_active=cell_active.astype(np.uint8),
            disk_active=disk_active.astype(np.uint8),
        )

    def generate(self, seed, scenario: str, split: str, start: int, stop: int) -> Batch:
        """Images `start:stop` of the split, the same whatever range they are asked in."""
        first, last = start // BLOCK_SIZE, (stop - 1) // BLOCK_SIZE
        blocks = [
            self.block(block_stream(seed, scenario, split, b)) for b in range(first, last + 1)
        ]
        offset = start - first * BLOCK_SIZE
        window = slice(offset, offset + stop - start)
        return Batch(*(np.concatenate([getattr(b, f) for b in blocks])[window] for f in _FIELDS))


def iter_split(params: dict, seed, scenario: str, split: str, n: int, chunk_size: int):
    """Yield (start, Batch) for consecutive chunks of `chunk_size` images (the last may be
    shorter); memory is bounded by one chunk."""
    sampler = Sampler(params)
    for start in range(0, n, chunk_size):
        yield start, sampler.generate(seed, scenario, split, start, min(start + chunk_size, n))
