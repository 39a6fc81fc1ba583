"""End to end: the data stage of the workflow on a tiny config in a temporary directory."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from workflow_runner import snakemake

# Snakemake puts a timestamp file into directory() outputs; zarr warns when listing them.
pytestmark = pytest.mark.filterwarnings("ignore:Object at .snakemake_timestamp is not recognized")
ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("x90", "x90_20")
FILES = ("train.zarr", "val.zarr", "test.zarr", "card.json")
TARGETS = [
    *(f"results/data/{s}/seed{r}/{f}" for s in SCENARIOS for r in (0, 1) for f in FILES),
    *(f"results/figures/data/samples_{s}.png" for s in SCENARIOS),
    "results/figures/data/layout.png",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["data"].update(n_train=30, n_val=10, n_test=20, chunk_size=16)
    config["scenarios"] = {name: config["scenarios"][name] for name in SCENARIOS}
    config["seeds"] = [0, 1]
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, *TARGETS, "--cores", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize(("split", "n"), [("train", 30), ("val", 10), ("test", 20)])
def test_stores_open_with_xarray_and_hold_the_contract(workdir, scenario, split, n):
    ds = xr.open_zarr(workdir / f"results/data/{scenario}/seed0/{split}.zarr", consolidated=False)
    n_disks = {"x90": 1, "x90_20": 2}[scenario]
    assert dict(ds.sizes) == {"sample": n, "y": 60, "x": 60, "cell": 10, "disk": n_disks}
    expected_dims = {
        "images": ("sample", "y", "x"),
        "cell_active": ("sample", "cell"),
        "disk_active": ("sample", "disk"),
        "cell_mask": ("cell", "y", "x"),
        "disk_mask": ("disk", "y", "x"),
    }
    assert {name: ds[name].dims for name in ds.data_vars} == expected_dims
    assert all(ds[name].dtype == np.uint8 for name in ds.data_vars)
    for name, dims in expected_dims.items():
        chunks = ds[name].encoding["chunks"]
        # chunked along sample only: every other dimension is whole
        assert chunks[1:] == ds[name].shape[1:], name
        assert chunks[0] == (min(16, n) if dims[0] == "sample" else ds[name].shape[0]), name
    assert set(np.unique(ds["images"].values).tolist()) == {0, 1}
    assert ds.attrs["split"] == split and ds.attrs["scenario"] == scenario
    assert ds.attrs["seed"] == [2020, 0]  # data seed and replicate
    assert ds.attrs["generation"]["noise"]["region"] == "background"


def _images(workdir, scenario, replicate, split):
    path = workdir / f"results/data/{scenario}/{replicate}/{split}.zarr"
    return xr.open_zarr(path, consolidated=False)["images"].values


@pytest.mark.slow
def test_splits_differ_and_cards_are_written(workdir):
    for scenario in SCENARIOS:
        train, val, test = (
            _images(workdir, scenario, "seed0", s) for s in ("train", "val", "test")
        )
        assert not np.array_equal(train[:20], test) and not np.array_equal(train[:10], val)
        assert not np.array_equal(val, test[:10])
        card = json.loads((workdir / f"results/data/{scenario}/seed0/card.json").read_text())
        assert [card["splits"][s]["n_images"] for s in ("train", "val", "test")] == [30, 10, 20]
        novelty = card["identical_to_a_training_image"]["test"]
        assert novelty["images"] == 20 and set(novelty["by_stratum"]) == {
            "outside", "inside_bg_off", "inside_bg_on"
        }  # fmt: skip
    card = json.loads((workdir / "results/data/x90_20/seed1/card.json").read_text())
    assert card["layout"]["cells_overlapping_disk"] == [[5, 7, 9], [2, 3]]


@pytest.mark.slow
def test_every_seed_gets_its_own_data(workdir):
    for scenario in SCENARIOS:
        for split in ("train", "val", "test"):
            a, b = (_images(workdir, scenario, r, split) for r in ("seed0", "seed1"))
            assert hashlib.sha256(a).hexdigest() != hashlib.sha256(b).hexdigest()


@pytest.mark.slow
def test_shared_replicates_keep_one_dataset(workdir, tmp_path):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["data"]["replicates"] = "shared"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "--quiet", "rules", "--cores", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    # one generate_data job per scenario, whatever the number of seeds
    jobs = [line for line in result.stdout.splitlines() if "generate_data" in line]
    assert jobs and jobs[0].split()[-1] == str(len(SCENARIOS)), result.stdout


@pytest.mark.slow
def test_figures_logs_and_benchmarks_exist(workdir):
    for target in TARGETS:
        if target.endswith(".png"):
            assert (workdir / target).read_bytes()[:4] == b"\x89PNG", target
    for scenario in SCENARIOS:
        log = (workdir / f"results/logs/generate_data/{scenario}/seed0.log").read_text()
        assert "images/s" in log
        assert (workdir / f"results/benchmarks/generate_data/{scenario}/seed1.tsv").is_file()


@pytest.mark.slow
def test_rerun_has_nothing_to_do(workdir):
    result = snakemake(workdir, *TARGETS, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr
