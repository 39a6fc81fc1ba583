"""The nmf reference (issue 13): a CNMF-style demixing that knows the cell size only. On a
stack made by adding components, the factorisation recovers them, the compactness rule calls
the cells foreground and the disk background, and the foreground output keeps the cells and
drops the disk."""

import numpy as np
import pytest
import xarray as xr
from scipy import optimize

from fgbg.references import (
    KNOWS,
    is_foreground,
    nnls_activations,
    reference_outputs,
    support_areas,
)

SIDE, CELL = 24, 4


def _atoms():
    """3 cells of side 4 (the third under the disk) and a disk of radius 7."""
    cells = np.zeros((3, SIDE, SIDE))
    for k, (r, c) in enumerate([(2, 2), (2, 16), (14, 14)]):
        cells[k, r : r + CELL, c : c + CELL] = 1.0
    yy, xx = np.mgrid[:SIDE, :SIDE] + 0.5
    disk = ((yy - 16) ** 2 + (xx - 16) ** 2 <= 7**2).astype(float)[None]
    return cells, disk


def _split(n, seed):
    rng = np.random.default_rng(seed)
    cells, disk = _atoms()
    cell_active = rng.random((n, 3)) < 0.5
    disk_active = rng.random((n, 1)) < 0.7
    images = 0.9 * np.einsum("nc,cyx->nyx", cell_active, cells)
    images += 0.6 * np.einsum("nd,dyx->nyx", disk_active * rng.uniform(0.5, 1, (n, 1)), disk)
    images = images * rng.uniform(0.9, 1.1, images.shape)  # non-negative noise, no offset
    return xr.Dataset(
        {
            "images": (("sample", "y", "x"), images.astype(np.float32)),
            "cell_active": (("sample", "cell"), cell_active.astype(np.uint8)),
            "disk_active": (("sample", "disk"), disk_active.astype(np.uint8)),
            "cell_mask": (("cell", "y", "x"), cells.astype(np.uint8)),
            "disk_mask": (("disk", "y", "x"), disk.astype(np.uint8)),
        },
        attrs={"generation": {"cells": {"size": CELL}}},
    )


def test_nmf_recovers_the_cells_and_drops_the_disk():
    train, val, test = _split(400, 0), _split(200, 1), _split(200, 2)
    config = {"type": "nmf", "components": [3, 4, 6]}
    out = reference_outputs(config, test, train=train, val=val)
    info = out["info"]
    assert info["cell_size"] == CELL  # from the data
    assert info["n_components"] == 4  # 3 cells + 1 disk: 3 is worse, 6 no better
    assert len(info["foreground_components"]) == 3
    cells, disk = _atoms()
    foreground = out["foreground"]
    assert foreground.shape == test["images"].shape
    assert foreground.min() >= 0 and foreground.max() <= 1
    truth = 0.9 * np.einsum("nc,cyx->nyx", test["cell_active"].values, cells)
    assert np.abs(foreground - truth).max() < 0.15  # the cells, with their activity
    disk_only = (disk[0] > 0) & (cells.sum(axis=0) == 0)
    on = test["disk_active"].values[:, 0] == 1
    assert foreground[on][:, disk_only].mean() < 0.02  # the disk dropped
    assert test["images"].values[on][:, disk_only].mean() > 0.3  # ... though it is there


def test_compactness_rule_calls_cell_sized_components_foreground():
    cells, disk = _atoms()
    two_cells = cells[0] + cells[1]
    three = cells.sum(axis=0)
    faint_halo = cells[0] + 0.4 * disk[0]  # a cell with a faint disk: support is the cell
    components = np.stack([cells[0], two_cells, three, disk[0], faint_halo]).reshape(5, -1)
    assert support_areas(components, 0.5).tolist() == [16, 32, 48, int(disk.sum()), 16]
    called = is_foreground(components, CELL, support=0.5, compact=2)
    assert called.tolist() == [True, True, False, False, True]
    assert not is_foreground(np.zeros((1, 16)), CELL, 0.5, 2)[0]  # an empty component


def test_nnls_on_the_gram_factor_is_scipys_nnls():
    rng = np.random.default_rng(0)
    components = rng.random((5, 60))
    images = rng.random((7, 60)) - 0.3
    mine = nnls_activations(images, components)
    for x, a in zip(images, mine, strict=True):
        want = optimize.nnls(components.T, x)[0]
        assert a == pytest.approx(want, abs=1e-8)
    assert (mine >= 0).all()


def test_nmf_needs_the_training_splits():
    with pytest.raises(ValueError, match="training and validation"):
        reference_outputs({"type": "nmf"}, _split(10, 0))


def test_knowledge_table_names_every_method_type():
    assert set(KNOWS) == {
        "dual",
        "vae",
        "layered",
        "raw",
        "neuropil",
        "truth",
        "bayes",
        "opening",
        "nmf",
    }
    assert {tuple(v) for v in KNOWS.values()} == {
        ("cell size", "disk scale", "cell outlines", "activity")
    }
    assert KNOWS["truth"]["activity"] and not KNOWS["nmf"]["cell outlines"]
