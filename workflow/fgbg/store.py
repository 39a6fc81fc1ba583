"""Write and read one split as an xarray Dataset in a Zarr v3 store.

Layout (the data contract): `images` (sample, y, x) uint8 0/1 or float32, `cell_active`
(sample, cell) uint8, `disk_active` (sample, disk) uint8, `cell_mask` (cell, y, x) uint8,
`disk_mask` (disk, y, x) uint8; attrs hold every generation parameter and the versions.
Chunked along `sample` only; no consolidated metadata. The store is written chunk by chunk
(memory bounded by one chunk) into a temporary directory beside the target and renamed
into place when complete. The SHA-256 of every chunk file is recorded in attrs
(`chunk_sha256`) and checked whenever a split is opened: Zarr reads a missing chunk as its
fill value (blank images), so a lost or damaged chunk would otherwise go unnoticed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from fgbg.generate import BLOCK_SIZE, SPLIT_KEYS, iter_split, scenario_key
from fgbg.layout import scenario_masks
from fgbg.logs import JobError
from fgbg.tables import versions


# Snakemake puts a `.snakemake_timestamp` file into directory() outputs; zarr warns about it
# whenever it lists the store. The file is harmless, so that one warning is silenced.
def _ignore_snakemake_timestamp() -> None:
    warnings.filterwarnings(
        "ignore", message=r"Object at \.snakemake_timestamp is not recognized", category=UserWarning
    )


_ignore_snakemake_timestamp()

CHECKSUMS = "chunk_sha256"  # attrs key: {chunk file path in the store: SHA-256}

SAMPLE_VARIABLES = {
    "images": ("sample", "y", "x"),
    "cell_active": ("sample", "cell"),
    "disk_active": ("sample", "disk"),
}


def split_attrs(params: dict, *, scenario: str, split: str, seed, n: int) -> dict:
    """Every fact needed to regenerate the split's bytes (JSON-serialisable)."""
    return {
        "scenario": scenario,
        "split": split,
        "n": int(n),
        "seed": seed if isinstance(seed, int) else [int(v) for v in seed],
        "generation": params,
        "random_stream": {
            "bit_generator": "PCG64",
            "seed_sequence": (
                f"SeedSequence({seed}, spawn_key=({scenario_key(scenario)}, "
                f"{SPLIT_KEYS[split]}, block))"
            ),
            "block_size": BLOCK_SIZE,
        },
        "pixel_in_disk": "pixel centre (row + 0.5, column + 0.5) within diameter / 2",
        "versions": versions("numpy", "xarray", "zarr"),
    }


def _dataset(batch, cell_mask, disk_mask, attrs=None) -> xr.Dataset:
    return xr.Dataset(
        {
            "images": (SAMPLE_VARIABLES["images"], batch.images),
            "cell_active": (SAMPLE_VARIABLES["cell_active"], batch.cell_active),
            "disk_active": (SAMPLE_VARIABLES["disk_active"], batch.disk_active),
            "cell_mask": (("cell", "y", "x"), cell_mask.astype(np.uint8)),
            "disk_mask": (("disk", "y", "x"), disk_mask.astype(np.uint8)),
        },
        attrs=attrs or {},
    )


def write_split(
    path, params: dict, *, scenario: str, split: str, seed, n: int, chunk_size: int
) -> Path:
    """Generate `n` images of a split and write them to the Zarr store `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    cell_mask, disk_mask = scenario_masks(params)
    attrs = split_attrs(params, scenario=scenario, split=split, seed=seed, n=n)
    chunk = min(chunk_size, n)
    group = None
    for start, batch in iter_split(params, seed, scenario, split, n, chunk_size):
        if group is None:
            # The first chunk creates the store with all metadata and encodings ...
            encoding = {
                name: {"chunks": (chunk, *getattr(batch, name).shape[1:])}
                for name in SAMPLE_VARIABLES
            }
            _dataset(batch, cell_mask, disk_mask, attrs).to_zarr(
                tmp, mode="w", zarr_format=3, consolidated=False, encoding=encoding
            )
            group = zarr.open_group(tmp, mode="r+", zarr_format=3)
            for name in SAMPLE_VARIABLES:
                group[name].resize((n, *group[name].shape[1:]))
            continue
        # ... the others fill their region of the resized arrays.
        stop = start + len(batch.images)
        for name in SAMPLE_VARIABLES:
            group[name][start:stop] = getattr(batch, name)
    group.attrs[CHECKSUMS] = chunk_checksums(tmp)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def chunk_checksums(path) -> dict[str, str]:
    """SHA-256 of every chunk file of a store, by path: every file but the metadata
    (`zarr.json`) and hidden ones (`.snakemake_timestamp`)."""
    root = Path(path)
    return {
        file.relative_to(root).as_posix(): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(root.rglob("*"))
        if file.is_file() and file.name != "zarr.json" and not file.name.startswith(".")
    }


def open_split(path) -> xr.Dataset:
    """Open a split lazily (Zarr v3, no consolidated metadata), after checking that every
    chunk file is the one written at generation; a JobError naming the store otherwise."""

    def damaged(problem: str) -> JobError:
        return JobError(
            f"damaged data store {path}: {problem}; regenerate it with: "
            f"snakemake --cores 1 --forcerun {path}"
        )

    try:
        with warnings.catch_warnings():  # also where a caller (e.g. pytest) reset the filters
            _ignore_snakemake_timestamp()
            ds = xr.open_zarr(path, consolidated=False, zarr_format=3)
    except Exception as error:  # missing or unreadable metadata; zarr raises several kinds
        raise damaged(f"cannot be opened ({type(error).__name__})") from None
    expected = ds.attrs.get(CHECKSUMS)
    if expected is None:
        raise damaged("no chunk checksums (written by an older version)")
    actual = chunk_checksums(path)
    for name in sorted(expected.keys() | actual.keys()):
        if name not in actual:
            raise damaged(f"chunk {name} is missing")
        if name not in expected:
            raise damaged(f"unexpected file {name}")
        if actual[name] != expected[name]:
            raise damaged(f"chunk {name} differs from the one written (checksum)")
    return ds
