"""End to end: the data stage of the workflow on a tiny config in a temporary directory."""

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
TARGETS = [
    *(f"results/data/{s}/{f}" for s in SCENARIOS for f in ("train.zarr", "test.zarr", "card.json")),
    *(f"results/figures/data/samples_{s}.png" for s in SCENARIOS),
    "results/figures/data/layout.png",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["data"].update(n_train=30, n_test=20, chunk_size=16)
    config["scenarios"] = {name: config["scenarios"][name] for name in SCENARIOS}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, *TARGETS, "--cores", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize(("split", "n"), [("train", 30), ("test", 20)])
def test_stores_open_with_xarray_and_hold_the_contract(workdir, scenario, split, n):
    ds = xr.open_zarr(workdir / f"results/data/{scenario}/{split}.zarr", consolidated=False)
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
    assert ds.attrs["seed"] == 2020
    assert ds.attrs["generation"]["noise"]["region"] == "background"


@pytest.mark.slow
def test_train_and_test_differ_and_cards_are_written(workdir):
    for scenario in SCENARIOS:
        train = xr.open_zarr(workdir / f"results/data/{scenario}/train.zarr", consolidated=False)
        test = xr.open_zarr(workdir / f"results/data/{scenario}/test.zarr", consolidated=False)
        assert not np.array_equal(train["images"][:20].values, test["images"].values)
        card = json.loads((workdir / f"results/data/{scenario}/card.json").read_text())
        assert card["splits"]["train"]["n_images"] == 30
        assert card["splits"]["test"]["n_images"] == 20
    card = json.loads((workdir / "results/data/x90_20/card.json").read_text())
    assert card["layout"]["cells_overlapping_disk"] == [[5, 7, 9], [2, 3]]


@pytest.mark.slow
def test_figures_logs_and_benchmarks_exist(workdir):
    for target in TARGETS:
        if target.endswith(".png"):
            assert (workdir / target).read_bytes()[:4] == b"\x89PNG", target
    for scenario in SCENARIOS:
        log = (workdir / f"results/logs/generate_data/{scenario}.log").read_text()
        assert "images/s" in log
        assert (workdir / f"results/benchmarks/generate_data/{scenario}.tsv").is_file()


@pytest.mark.slow
def test_rerun_has_nothing_to_do(workdir):
    result = snakemake(workdir, *TARGETS, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr
