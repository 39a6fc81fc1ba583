"""Zarr stores and data cards: the data contract, chunking, atomic writes, exact overlaps."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from fgbg.config import load_config, scenario_params
from fgbg.datacard import PIXEL_CLASSES, data_card, measure_split
from fgbg.generate import Batch, Sampler
from fgbg.logs import JobError
from fgbg.store import _dataset, open_split, write_split
from fgbg.tables import write_json

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load_config(yaml.safe_load((ROOT / "config.yaml").read_text()))
SEED, N, CHUNK = 7, 250, 100  # three chunks, the last one partial
EXPECTED_OVERLAPS = {"x90": [[5, 6, 7, 9]], "x50": [[5, 6, 7, 9]], "x90_20": [[5, 7, 9], [2, 3]]}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """{scenario: {split: path}} for the three default scenarios."""
    root = tmp_path_factory.mktemp("data")
    out = {}
    for scenario in CONFIG["scenarios"]:
        params = scenario_params(CONFIG, scenario)
        out[scenario] = {
            split: write_split(
                root / scenario / f"{split}.zarr",
                params,
                scenario=scenario,
                split=split,
                seed=SEED,
                n=n,
                chunk_size=CHUNK,
            )
            for split, n in (("train", N), ("test", N // 2))
        }
    return out


def test_store_holds_the_data_contract(stores):
    ds = open_split(stores["x90_20"]["train"])
    assert set(ds.data_vars) == {"images", "cell_active", "disk_active", "cell_mask", "disk_mask"}
    assert ds["images"].dims == ("sample", "y", "x")
    assert ds["cell_active"].dims == ("sample", "cell")
    assert ds["disk_active"].dims == ("sample", "disk")
    assert ds["cell_mask"].dims == ("cell", "y", "x")
    assert ds["disk_mask"].dims == ("disk", "y", "x")
    assert dict(ds.sizes) == {"sample": N, "y": 60, "x": 60, "cell": 10, "disk": 2}
    for name in ds.data_vars:
        assert ds[name].dtype == np.uint8, name


def test_chunked_along_sample_only(stores):
    ds = open_split(stores["x90"]["train"])
    assert ds["images"].encoding["chunks"] == (CHUNK, 60, 60)
    assert ds["cell_active"].encoding["chunks"] == (CHUNK, 10)
    assert ds["disk_active"].encoding["chunks"] == (CHUNK, 1)
    assert ds["cell_mask"].encoding["chunks"] == (10, 60, 60)


def test_zarr_v3_without_consolidated_metadata(stores):
    path = stores["x50"]["test"]
    group = zarr.open_group(path, mode="r")
    assert group.metadata.zarr_format == 3
    assert group.metadata.consolidated_metadata is None
    assert not list(Path(path).parent.glob(".*tmp*")), "temporary store left behind"


def test_stored_bytes_equal_the_generator(stores):
    params = scenario_params(CONFIG, "x90")
    expected = Sampler(params).generate(SEED, "x90", "train", 0, N)
    ds = open_split(stores["x90"]["train"])
    assert ds["images"].values.tobytes() == expected.images.tobytes()
    assert ds["cell_active"].values.tobytes() == expected.cell_active.tobytes()
    assert ds["disk_active"].values.tobytes() == expected.disk_active.tobytes()


def test_attrs_record_every_generation_parameter(stores):
    ds = open_split(stores["x90_20"]["test"])
    attrs = json.loads(json.dumps(ds.attrs))  # JSON-serialisable
    assert attrs["generation"] == scenario_params(CONFIG, "x90_20")
    assert (attrs["scenario"], attrs["split"], attrs["seed"], attrs["n"]) == (
        "x90_20",
        "test",
        SEED,
        N // 2,
    )
    assert {"python", "numpy", "xarray", "zarr"} <= set(attrs["versions"])
    assert attrs["random_stream"]["block_size"] > 0


@pytest.mark.parametrize("scenario", list(EXPECTED_OVERLAPS))
def test_exact_overlaps_from_the_stored_masks(stores, scenario):
    ds = open_split(stores[scenario]["train"])
    cells, disks = ds["cell_mask"].values.astype(int), ds["disk_mask"].values.astype(int)
    overlap = np.einsum("cyx,dyx->cd", cells, disks) > 0
    under = [np.flatnonzero(overlap[:, k]).tolist() for k in range(overlap.shape[1])]
    assert under == EXPECTED_OVERLAPS[scenario]
    assert [len(u) for u in under] == {"x90": [4], "x50": [4], "x90_20": [3, 2]}[scenario]


def test_rewrite_replaces_the_store_and_survives_snakemake_timestamp(stores, tmp_path):
    path = tmp_path / "s.zarr"
    params = scenario_params(CONFIG, "x50")
    write_split(path, params, scenario="x50", split="train", seed=1, n=30, chunk_size=10)
    write_split(path, params, scenario="x50", split="train", seed=2, n=20, chunk_size=10)
    (path / ".snakemake_timestamp").touch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = open_split(path)
    assert ds.sizes["sample"] == 20 and ds.attrs["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


def test_data_card_counts_match_the_stores(stores):
    splits = {split: open_split(path) for split, path in stores["x90_20"].items()}
    card = data_card(splits, "x90_20")
    assert card["layout"]["cells_overlapping_disk"] == EXPECTED_OVERLAPS["x90_20"]
    assert card["layout"]["cells_outside_disks"] == [0, 1, 4, 6, 8]
    for split, ds in splits.items():
        facts = card["splits"][split]
        assert facts["n_images"] == ds.sizes["sample"]
        assert facts["cell_activation"]["count"] == ds["cell_active"].values.sum(0).tolist()
        assert facts["disk_activation"]["count"] == ds["disk_active"].values.sum(0).tolist()
        classes = facts["pixel_classes"]
        assert list(classes) == list(PIXEL_CLASSES)
        assert sum(c["pixels"] for c in classes.values()) == ds["images"].size
        on = sum(round(c["on_rate"] * c["pixels"]) for c in classes.values())
        assert on == int(ds["images"].values.sum())


def test_pixel_classes_on_a_hand_made_image():
    """One 60 x 60 image, x90 layout, cell 5 (inside the disk) and cell 0 active, disk on."""
    params = scenario_params(CONFIG, "x90")
    sampler = Sampler(params)
    cells, disks = sampler.cell_masks, sampler.disk_masks
    image = (cells[0] | disks[0]).astype(np.uint8)[None]
    cell_active = np.zeros((1, 10), np.uint8)
    cell_active[0, [0, 5]] = 1
    batch = Batch(image, cell_active, np.ones((1, 1), np.uint8))
    classes = measure_split(_dataset(batch, cells, disks))["pixel_classes"]
    assert classes["cell_only"] == {"pixels": 36, "on_rate": 1.0}
    assert classes["cell_in_active_disk"] == {"pixels": 36, "on_rate": 1.0}
    assert classes["disk_only"] == {"pixels": int(disks[0].sum()) - 36, "on_rate": 1.0}
    assert classes["empty"]["on_rate"] == 0.0
    assert classes["empty"]["pixels"] == 3600 - 36 - int(disks[0].sum())


def test_write_json_is_atomic(tmp_path):
    target = tmp_path / "card.json"
    write_json({"a": 1}, target)
    write_json({"a": 2}, target)
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]


def _damage_missing(path):
    (path / "images/c/1/0/0").unlink()


def _damage_truncated(path):
    chunk = path / "cell_active/c/0/0"
    chunk.write_bytes(chunk.read_bytes()[:-3])


def _damage_extra(path):
    (path / "images/c/stray").write_bytes(b"\x00")


def _damage_metadata(path):
    (path / "images/zarr.json").write_text("{")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_damage_missing, "chunk images/c/1/0/0 is missing"),
        (_damage_truncated, "chunk cell_active/c/0/0 differs from the one written (checksum)"),
        (_damage_extra, "unexpected file images/c/stray"),
        (_damage_metadata, "cannot be opened (JSONDecodeError)"),
    ],
    ids=["missing_chunk", "truncated_chunk", "extra_file", "broken_metadata"],
)
def test_damaged_store_is_refused_with_one_line(tmp_path, damage, problem):
    """Zarr reads a missing chunk as its fill value (blank images): open_split must notice."""
    path = tmp_path / "s.zarr"
    write_split(path, scenario_params(CONFIG, "x90"), scenario="x90", split="test", seed=1,
                n=30, chunk_size=10)  # fmt: skip
    assert open_split(path)["images"].values.any(axis=(1, 2)).all()
    damage(path)
    with pytest.raises(JobError) as caught:
        open_split(path)
    assert str(caught.value) == (
        f"damaged data store {path}: {problem}; regenerate it with: "
        f"snakemake --cores 1 --forcerun {path}"
    )
