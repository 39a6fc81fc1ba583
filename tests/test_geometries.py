"""The geometry suite: its configs are valid and vary what the issue asks for, and its
table counts the runs that meet every target and names the layered model's worst miss."""

from argparse import Namespace

import numpy as np
import pytest
from test_study import CEILING, GOOD, write_run

from fgbg.config import load_config_file
from fgbg_tools import geometries

CONFIGS = {path.stem: load_config_file(path) for path in geometries.geometries()}


def _covered(config, disk):
    height, width = config["image"]["height"], config["image"]["width"]
    rows, cols = np.mgrid[:height, :width] + 0.5
    distance = np.hypot(rows - disk["center"][0], cols - disk["center"][1])
    return (distance <= disk["diameter"] / 2).mean()


def test_the_suite_varies_the_geometry_a_user_would():
    assert len(CONFIGS) >= 6
    sizes = [
        (c["image"]["height"], c["image"]["width"], c["cells"]["size"]) for c in CONFIGS.values()
    ]
    assert any(h % k or w % k for h, w, k in sizes)  # a side the cell size does not divide
    assert any(h != w for h, w, _ in sizes)  # an aspect other than square
    assert {k for _, _, k in sizes} >= {4, 5, 6, 9}  # small, odd and large cells
    assert max(len(c["cells"]["positions"]) for c in CONFIGS.values()) >= 20  # many cells
    disks = [(c, d) for c in CONFIGS.values() for s in c["scenarios"].values() for d in s["disks"]]
    assert max(len(s["disks"]) for c in CONFIGS.values() for s in c["scenarios"].values()) >= 3
    assert min(d["probability"] for _, d in disks) <= 0.2  # a rare disk
    assert max(_covered(c, d) for c, d in disks) >= 0.45  # a disk over half the image
    assert any(c["noise"]["sd"] < 0.4 for c in CONFIGS.values())  # denser disks
    on_border = [
        (r, col)
        for c in CONFIGS.values()
        for r, col in c["cells"]["positions"]
        if r + c["cells"]["size"] == c["image"]["height"]
        or col + c["cells"]["size"] == c["image"]["width"]
    ]
    assert on_border
    for config in CONFIGS.values():  # the default model and the methods the table reads
        assert config["models"]["layered"]["type"] == "layered"
        assert set(geometries.METHODS) <= {*config["models"], *config["references"]}


def test_the_table_counts_passing_runs_and_names_the_worst_miss(tmp_path):
    results = tmp_path / "small_cells" / "results"
    for seed in range(3):
        write_run(results, "bayes", seed, {**CEILING, "log_loss": 0.1}, 0.0005, history=False)
        write_run(results, "opening", seed, GOOD, 0.01, history=False)
        write_run(results, "nmf", seed, {**GOOD, "tpr": 0.5}, 0.01, history=False)
    good = {**GOOD, "log_loss": 0.2}
    write_run(results, "layered", 0, good, 0.01, history=False)
    write_run(results, "layered", 1, good, 0.04, history=False)  # leakage above 0.03
    write_run(results, "layered", 2, {**good, "tpr": 0.90, "log_loss": 0.5}, 0.01, history=False)
    row = geometries.table(tmp_path).set_index("geometry").loc["small_cells"]
    assert row["scenario"] == "x90"
    assert (row["layered"], row["opening"], row["nmf"], row["bayes"]) == (
        "1 of 3",
        "3 of 3",
        "0 of 3",
        "3 of 3",
    )
    bound = CEILING["tpr"] - 0.03
    assert row["layered: worst miss"] == f"seed 2: tpr `inside_bg_on` 0.900 (bound {bound:.3f})"
    assert row["layered: log loss excess"] == "0.100-0.400"  # against the ceiling's 0.1
    ceiling = f"{CEILING['auroc']:.3f}"
    assert row["ceiling auroc inside_bg_on"] == f"{ceiling}-{ceiling}"


def test_run_table_reads_one_run_of_any_config_into_its_block(tmp_path):
    """The intensity config's table: one run, the methods asked for (dual among them), the
    page's block named by --name filled and no other."""
    results = tmp_path / "run" / "results"
    for seed in range(2):
        write_run(results, "bayes", seed, CEILING, 0.0005, history=False)
        write_run(results, "dual", seed, {**GOOD, "auroc": 0.9}, 0.2, history=False)
        write_run(results, "layered", seed, GOOD, 0.01 + 0.03 * seed, history=False)
    page = tmp_path / "results.md"
    blocks = "<!-- generated: {} -->\nold\n<!-- end generated -->\n"
    page.write_text(blocks.format("intensity") + blocks.format("geometries"))
    geometries.main(["run-table", "--results", str(tmp_path / "run"), "--name", "intensity",
                     "--methods", "layered,dual,bayes", "--write", str(page)])  # fmt: skip
    text = page.read_text()
    assert text.count("old") == 1 and text.index("old") > text.index("geometries")
    header, _rule, row = text.splitlines()[1:4]
    assert "| layered | dual | bayes |" in header and "opening" not in header
    assert "| 1 of 2 | 0 of 2 | 2 of 2 |" in row
    with pytest.raises(SystemExit):
        geometries.main(["run-table", "--results", str(tmp_path / "run")])  # no --name
    with pytest.raises(SystemExit):  # the results folder itself, not the run's directory
        geometries.main(["run-table", "--results", str(results), "--name", "intensity"])


def test_an_unknown_geometry_is_a_clear_error():
    with pytest.raises(SystemExit, match="no geometry nope"):
        geometries.geometries(["nope"])


def test_run_measures_the_asked_split_with_the_configs_own_evaluation(monkeypatch, tmp_path):
    commands = []
    monkeypatch.setattr(
        geometries.subprocess,
        "run",
        lambda command: commands.append(command) or Namespace(returncode=0),
    )
    geometries.run(2, "val", tmp_path, only=["wide"])
    geometries.run(2, "test", tmp_path, only=["wide"])
    val, test = commands
    assert val[val.index("--config") + 1] == "evaluation={split: val, threshold: 0.5}"
    assert "--config" not in test and str(tmp_path / "wide") in test
