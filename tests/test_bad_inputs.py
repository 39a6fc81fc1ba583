"""Damaged inputs stop a job with one line naming the file; a no-disk control runs through.

One tiny run (30 x 30 images, one scenario: a control without background disks; the dual
model, one seed, one epoch) is copied for each damage, so that each test sees the run's
files as they were. Each failing job must leave one line (`error: ...`, naming the file and
how to make it again) in its log and on stderr, no traceback anywhere, and every other file
under results/ unchanged.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from workflow_runner import snakemake

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Object at .snakemake_timestamp is not recognized"),
]
ROOT = Path(__file__).resolve().parents[1]
RUN = "results/models/control/dual/seed0"
EVAL = "results/eval/control/dual/seed0"
TEST_STORE = "results/data/control/seed0/test.zarr"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bad_inputs")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["image"] = {"height": 30, "width": 30}
    config["cells"]["positions"] = [[2, 2], [2, 20], [20, 2], [20, 20]]
    config["scenarios"] = {"control": {"disks": []}}
    config["models"] = {"dual": {"type": "dual"}}
    config["data"].update(n_train=32, n_val=16, n_test=16, chunk_size=8)
    config["seeds"] = [0]
    config["training"].update(epochs=1, batch_size=16, device="cpu")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return workdir


def snapshot(workdir: Path) -> dict[str, str]:
    return {
        path.relative_to(workdir).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((workdir / "results").rglob("*"))
        if path.is_file()
    }


def run_damaged(workdir, tmp_path, damage, *args):
    """Copy the run, damage the copy, run snakemake ARGS on it: (copy, result, files before)."""
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    damage(copy)
    before = snapshot(copy)
    return copy, snakemake(copy, *args), before


def assert_one_line_failure(result, log: Path, line: str):
    terminal = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in terminal, terminal[-3000:]
    assert f"error: {line}" in terminal.splitlines()
    text = log.read_text()
    assert "Traceback" not in text, text
    assert text.splitlines()[-1] == f"error: {line}", text


def assert_only_job_files_changed(copy, before, outputs, log):
    """Every results/ file but the failed job's log and benchmark is unchanged; its outputs
    (removed by Snakemake) are absent rather than half-written."""
    after = snapshot(copy)
    job_files = set(outputs) | {log}
    assert {k: v for k, v in after.items() if k not in job_files} == {
        k: v for k, v in before.items() if k not in job_files
    }
    for output in outputs:
        assert not (copy / output).exists(), output


EVAL_TABLES = ("cells.csv", "rates.csv", "cell_rates.csv", "separation.csv", "latent.csv")


def eval_outputs(workdir) -> list[str]:
    """The evaluation job's outputs: every method's tables of the (scenario, seed)."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    methods = [*config["models"], *config["references"]]
    return [
        f"results/eval/control/{method}/seed0/{name}"
        for method in methods
        for name in (*EVAL_TABLES, "eval.json")
    ]


EVAL_LOG = "results/logs/evaluate/control/seed0.log"  # one job scores every method
REEVALUATE = (f"{EVAL}/rates.csv", "--cores", "1", "--forcerun", "evaluate")


def test_missing_chunk_stops_evaluate_and_regenerating_repairs_it(workdir, tmp_path):
    chunk = "images/c/1/0/0"

    def remove_chunk(copy):
        (copy / TEST_STORE / chunk).unlink()

    copy, result, before = run_damaged(workdir, tmp_path, remove_chunk, *REEVALUATE)
    line = (
        f"damaged data store {TEST_STORE}: chunk {chunk} is missing; regenerate it with: "
        f"snakemake --cores 1 --forcerun {TEST_STORE}"
    )
    assert_one_line_failure(result, copy / EVAL_LOG, line)
    assert_only_job_files_changed(copy, before, eval_outputs(copy), EVAL_LOG)
    # the advice works: the store comes back byte for byte and the run completes
    result = snakemake(copy, f"{EVAL}/rates.csv", "--cores", "2", "--forcerun", TEST_STORE)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (copy / TEST_STORE / chunk).read_bytes() == (workdir / TEST_STORE / chunk).read_bytes()
    assert (copy / EVAL / "rates.csv").exists()


def test_truncated_chunk_stops_evaluate_with_one_line(workdir, tmp_path):
    chunk = "images/c/0/0/0"

    def truncate(copy):
        path = copy / TEST_STORE / chunk
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    copy, result, before = run_damaged(workdir, tmp_path, truncate, *REEVALUATE)
    line = (
        f"damaged data store {TEST_STORE}: chunk {chunk} differs from the one written "
        f"(checksum); regenerate it with: snakemake --cores 1 --forcerun {TEST_STORE}"
    )
    assert_one_line_failure(result, copy / EVAL_LOG, line)
    assert_only_job_files_changed(copy, before, eval_outputs(copy), EVAL_LOG)


def test_corrupt_model_file_stops_evaluate_with_one_line(workdir, tmp_path):
    def garbage(copy):
        (copy / RUN / "model.pt").write_bytes(b"\x80\x02garbage, not a model" * 10)

    copy, result, before = run_damaged(workdir, tmp_path, garbage, *REEVALUATE)
    line = (
        f"damaged model file {RUN}/model.pt (unreadable: UnpicklingError); retrain it with: "
        f"snakemake --cores 1 --forcerun {RUN}/model.pt"
    )
    assert_one_line_failure(result, copy / EVAL_LOG, line)
    assert "weights_only" not in result.stdout + result.stderr
    assert_only_job_files_changed(copy, before, eval_outputs(copy), EVAL_LOG)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_stops_training_before_any_work(workdir, tmp_path):
    run = "results/models/control/dual/seed1"
    outputs = [f"{run}/{name}" for name in ("model.pt", "history.csv", "run.json")]
    log = "results/logs/train/control/dual/seed1.log"

    def seed1_data(copy):  # seed 1's data replicate exists: only the training job is new
        two_seeds = ("--cores", "1", "--config", "seeds=[0, 1]")
        assert snakemake(copy, "results/data/control/seed1/card.json", *two_seeds).returncode == 0

    copy, result, before = run_damaged(
        workdir,
        tmp_path,
        seed1_data,
        f"{run}/model.pt",
        "--cores",
        "1",
        "--config",
        "seeds=[0, 1]",
        "training={device: cuda}",
    )
    line = (
        f"training.device: cuda is not available on this machine (torch {torch.__version__} "
        "is built without CUDA); available: cpu (or auto)"
    )
    assert_one_line_failure(result, copy / log, line)
    assert (copy / log).read_text().splitlines() == [f"error: {line}"]  # before any work
    assert_only_job_files_changed(copy, before, outputs, log)
    assert not (copy / run).exists() or not any((copy / run).iterdir())


def test_no_disk_control_runs_end_to_end(workdir):
    card = json.loads((workdir / "results/data/control/seed0/card.json").read_text())
    for split in ("train", "val", "test"):
        assert card["splits"][split]["disk_activation"]["count"] == []
        assert card["splits"][split]["pixel_classes"]["disk_only"]["pixels"] == 0
    rates = pd.read_csv(workdir / EVAL / "rates.csv").set_index("stratum")
    base = ["outside", "inside_bg_off", "inside_bg_on", "inside", "all"]
    assert list(rates.index) == base + [f"{name}_novel" for name in base]
    assert rates.loc["outside", "n"] == rates.loc["all", "n"] == 16 * 4
    for stratum in ("inside_bg_off", "inside_bg_on", "inside"):
        assert rates.loc[stratum, "n"] == 0
        assert np.isnan(rates.loc[stratum, ["tpr", "fpr", "auroc"]].astype(float)).all()
    summary = pd.read_csv(workdir / "results/summary.csv")
    control = summary[(summary["scenario"] == "control") & (summary["model"] == "dual")]
    control = control.set_index(["stratum", "metric"])
    assert control.loc[("inside", "tpr"), "n_seeds"] == 0
    assert np.isnan(control.loc[("inside", "tpr"), "mean"])
    assert control.loc[("outside", "tpr"), "n_seeds"] == 1
    references = yaml.safe_load((workdir / "config.yaml").read_text())["references"]
    assert len(pd.read_csv(workdir / "results/findings.csv")) == 6 * (1 + len(references))
    separation = pd.read_csv(workdir / EVAL / "separation.csv")
    assert separation["value"][separation["metric"] == "leakage"].isna().all()  # no disk
    for figure in (
        "data/layout.png",
        "data/samples_control.png",
        "cell_map_control_dual.png",
        "control/dual/seed0/reconstruction.png",
        "summary.png",
        "separation.png",
        "cells_inside_bg_on.png",
    ):
        assert (workdir / "results/figures" / figure).stat().st_size > 5000, figure
